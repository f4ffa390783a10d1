"""The synthetic demo dataset behind mww-generate, from request to files.

request (what may be asked), phrases and sentences (what is said), sounds (the audio), plan (speakers,
held-out ones, one job per file), jobs (running them), layout and metadata (folders, generation.json,
the override) and dataset (generate_dataset); tts is the offline espeak-ng speech synthesiser, piper
speaks with Piper voice files, and voices says which engines a request uses.
"""

"""The tune stage: `mww-autotune`, fine-tuning a trained checkpoint towards a target FA/h and recall.
The session loop (`autotune`), one session's state and bursts (`session`), the evaluations it
measures with (`evaluation`), its decisions (`decision`) and what it writes (`report`). It imports
the stages before it (device to evaluate)."""

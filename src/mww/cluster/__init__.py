"""The cluster stage, run in the PyTorch environment only: speaker embeddings with SpeechBrain's
ECAPA-TDNN (`embeddings`), clustering them into voices (`speaker_tree`), the analysis and its report
(`analyze`, `report`), the audit of speakers leaking across splits (`leakage`) and moving clips into
speaker folders or back (`apply`). It imports `device`, `config` and `data` (never TensorFlow)."""

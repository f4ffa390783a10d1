"""The train stage: step-based training in phases (`trainer`) with its progress and logs (`runlog`),
validation the way the device runs (`validation`, `metrics`), the cutoff and window a model ships
with (`calibration`), hard-negative mining (`mining`), the weights' moving average
(`weight_average`), checkpoints and their selection (`checkpoints`), resuming a stopped run
(`resume`), starting a run from a trained checkpoint (`fine_tune`) and one run per checkpoint
folder (`lock`). It imports `device`, `config`, `data` and `model`."""

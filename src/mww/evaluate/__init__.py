"""The evaluate stage: device-faithful measurement of a checkpoint or an exported model on a split
of the dataset (`run`) or on any folders of recordings (`folders`): the model's outputs (`outputs`),
what they measure (`measure`) and the report, plots and calibration.json (`report`); and hearing a
model on files or a microphone (`listen`). It imports the stages before it (device to export)."""

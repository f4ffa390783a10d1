"""The data stage: from dataset folders to what training and evaluation read. Finding, checking and
splitting the files by speaker (`ingest`), device features in an on-disk store (`featurize`,
`feature_store`, run together by `prepare`), augmented variants made ahead of training (`augment`,
`transforms`, `placement`), SpecAugment (`specaugment`), batches (`sampler`) and the training sources
and evaluation sets (`sources`). It imports `device` and `config` only."""

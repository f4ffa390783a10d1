"""The model stage: what network a config describes and the one place its lengths are derived
(`plan`), the layer kinds each architecture is made of, each of which builds its Keras layers and
runs its streaming step from the trained weights (`layers`, `weights`), the trainable Keras model
(`builder`), the stateful streaming twin the export converts and the whole-recording scorer
(`streaming`, `scoring`). It imports `device` and `config` only."""

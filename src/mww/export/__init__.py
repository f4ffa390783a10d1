"""The export stage: a checkpoint turned into the streaming int8 TFLite model the ESP32 runs
(`convert`), its v2 manifest and the calibrated cutoff it carries (`manifest`), the `esphome.yaml`
block (`esphome`), and the ESPHome compatibility verifier (`verify`, `manifest_checks`, `check`).
It imports the stages before it (device to train)."""

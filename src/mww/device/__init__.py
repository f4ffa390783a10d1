"""The device stage: the ESP32's side of every line, reproduced. The device contract's constants
(`constants`, the one place they live), the audio format it hears (`audio`), its front end and int8
input rule (`features`), its detector (`detection`) and Home Assistant's reading of the same manifest
(`pymicro`), running a `.tflite` in TFLite Micro (`runtime`, `tflm_arena`) and reading its flatbuffer
(`tflite_graph`). It imports nothing of the package but `mww.errors` and `mww.atomic`; every other
stage may import it."""

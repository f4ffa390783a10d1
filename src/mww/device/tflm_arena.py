"""Running a model in the TFLite Micro reference interpreter: the arena it needs, device inputs.

`measure_tensor_arena` bisects the smallest arena in which the model allocates and runs once;
`declared_arena_size` adds the manifest's safety margin; `device_inputs` builds the int8 chunks the
device would write (front-end features of a synthetic clip, quantized with the device's rule).
TensorFlow is never imported.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from mww.device import constants as C
from mww.device.tflite_graph import ARENA_ALIGNMENT, VerifyError, parse_model

# The TFLite Micro Python wrapper dereferences a null allocator (segfault) when the arena cannot
# even hold the interpreter's own bookkeeping (about 0.5 kB), so arena probes never go below this.
ARENA_PROBE_FLOOR = 1024
# Length of the synthetic clip (tone + noise) that is looped to feed the streaming invocations.
SYNTHETIC_CLIP_SECONDS = 2.0
# The arena a manifest declares: measured (reference kernels) + 10 % + 1 KiB, rounded up to 16 bytes
# (mww.export.convert and the verifier's manifest check both use declared_arena_size). The 10 % covers
# kernels that need more scratch than the reference ones (ESP-NN); the fixed part covers ESPHome's
# resource-variable table, which always has 20 slots while the reference interpreter sizes it to
# the model's own variable count. The official models declare 7-12 % above the reference need;
# this is a little more generous.
ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_BYTES = 1024


class AllocationError(VerifyError):
    """The model does not allocate in TFLite Micro even with the largest arena tried."""


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Send native (C++) stderr to a temp file for the block; the list receives what was written.

    TFLite Micro prints every failed allocation attempt, which would flood the terminal during the
    arena bisection; the last lines are kept to explain a failure.
    """
    captured: list[str] = []
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(sink.read().decode(errors="replace").splitlines())


def micro_interpreter(model_bytes: bytes, arena_size: int, preserve: bool = False) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve
        else runtime.InterpreterConfig.kAllocationRecording
    )
    return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size, intrepreter_config=config)


def zero_inputs(interpreter: Any, count: int) -> list[np.ndarray]:
    inputs = []
    for i in range(count):
        details = interpreter.get_input_details(i)
        inputs.append(np.zeros([int(d) for d in details["shape"]], dtype=details["dtype"]))
    return inputs


def _fits(model_bytes: bytes, arena_size: int, input_count: int) -> bool:
    """Whether the model allocates in `arena_size` bytes and survives one invocation (CALL_ONCE)."""
    try:
        interpreter = micro_interpreter(model_bytes, arena_size)
        for i, value in enumerate(zero_inputs(interpreter, input_count)):
            interpreter.set_input(value, i)
        interpreter.invoke()
    except RuntimeError:
        return False
    return True


def measure_tensor_arena(model_bytes: bytes, upper: int = 1 << 20) -> int:
    """The smallest tensor arena (bytes) in which TFLite Micro allocates the model and invokes it once.

    Byte-exact bisection between ARENA_PROBE_FLOOR and `upper`, with the TFLite Micro reference
    interpreter (recording allocator, the model's own resource-variable count). TFLite Micro aligns
    arena buffers to 16 bytes, so results come in 16-byte steps; a model that fits in the floor
    reports the floor. This is the reference kernels' need: ESP-NN kernels and ESPHome's fixed
    capacity of 20 resource variables can need more, so declare a margin above it in the manifest.
    Raises AllocationError when the model does not fit even in `upper` bytes.
    """
    model = parse_model(model_bytes, "model bytes")
    input_count = model.Subgraphs(0).InputsLength()
    upper = max(int(upper), ARENA_PROBE_FLOOR)
    with native_stderr() as log:
        if _fits(model_bytes, ARENA_PROBE_FLOOR, input_count):
            return ARENA_PROBE_FLOOR
        fits_upper = _fits(model_bytes, upper, input_count)
        low, high = ARENA_PROBE_FLOOR, upper  # low does not fit; high fits (when fits_upper)
        while fits_upper and high - low > 1:
            middle = (low + high) // 2
            if _fits(model_bytes, middle, input_count):
                high = middle
            else:
                low = middle
    if not fits_upper:
        said = " / ".join(line.strip() for line in log[-3:] if line.strip()) or "no message"
        raise AllocationError(
            f"The model does not allocate and run in TFLite Micro even with a {upper}-byte arena "
            f"(TFLite Micro said: {said}). An op TFLite Micro lacks or a broken graph is the usual "
            "cause; look at the op list, or raise the upper bound if the model really is that large."
        )
    return high


def declared_arena_size(measured: int) -> int:
    """The arena a manifest should declare for a measured need: measured + 10 % + 1 KiB, 16-aligned."""
    wanted = measured * (1 + ARENA_MARGIN_FRACTION) + ARENA_MARGIN_BYTES
    return int(math.ceil(wanted / ARENA_ALIGNMENT) * ARENA_ALIGNMENT)


def synthetic_clip(seed: int = 0, seconds: float = SYNTHETIC_CLIP_SECONDS) -> np.ndarray:
    """A clip of float audio at the device rate: background noise, then a voiced, gliding tone.

    The first quarter is quiet noise (the front end settles its noise estimate), then a
    harmonic tone whose pitch glides 140 -> 260 Hz under a syllable-like envelope, over louder noise,
    then quiet noise again. It is not speech; it exercises the front end and the model with
    features that move the way speech features do.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * C.SAMPLE_RATE_HZ)
    t = np.arange(n) / C.SAMPLE_RATE_HZ
    audio = 0.003 * rng.standard_normal(n)
    start, stop = n // 4, 3 * n // 4
    span = stop - start
    pitch = np.linspace(140.0, 260.0, span)
    phase = 2 * np.pi * np.cumsum(pitch) / C.SAMPLE_RATE_HZ
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    envelope = np.sin(np.pi * np.arange(span) / span) ** 2 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t[:span]))
    audio[start:stop] += 0.25 * envelope * voiced + 0.02 * envelope * rng.standard_normal(span)
    return np.clip(audio, -1.0, 1.0)


def stream_features(frames: int, seed: int = 0) -> np.ndarray:
    """`frames` rows of uint16 front-end features (frames, 40) of the synthetic clip, looped.

    The clip is repeated in the audio domain and run through one front end (mww.device.features), so the
    stream is continuous, as on the device; the result is cut (or, if short, tiled) to `frames`.
    """
    from mww.device.features import audio_to_uint16_features

    clip = synthetic_clip(seed)
    needed = (frames + 1) * C.STEP_SAMPLES + C.WINDOW_SAMPLES
    audio = np.tile(clip, -(-needed // len(clip)))[:needed]
    features = audio_to_uint16_features(audio)
    if len(features) == 0:
        return np.zeros((frames, C.MEL_BINS), dtype=np.uint16)
    return np.resize(features, (frames, C.MEL_BINS)).astype(np.uint16)


def device_inputs(
    shape: list[int], dtype: np.dtype, steps: int, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Inputs as the device writes them, and a few words saying what they are.

    For the device layout [1, stride, 40]: uint16 front-end features of synthetic audio
    (`stream_features`), sliced into chunks of `stride` frames, converted with the device's integer
    rule (mww.device.features.quantize_uint16). A float input gets the value that int8 stands for; any
    other layout gets plain random data of its dtype.
    """
    from mww.device.features import dequantize_input, quantize_uint16

    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    device_layout = len(shape) == 3 and shape[0] == 1 and shape[2] == C.MEL_BINS and shape[1] >= 1
    if device_layout:
        stride = shape[1]
        quantized = quantize_uint16(stream_features(steps * stride, seed))
        inputs = []
        for step in range(steps):
            q = quantized[step * stride : (step + 1) * stride][np.newaxis]
            value = dequantize_input(q) if dtype.kind == "f" else q
            inputs.append(np.asarray(value).astype(dtype))
        seconds = steps * stride * C.STEP_SAMPLES / C.SAMPLE_RATE_HZ
        what = (
            f"device-quantized features of {seconds:g} s of synthetic tone + noise audio, "
            f"{stride} frames per call"
        )
        return inputs, what
    inputs = []
    for _ in range(steps):
        if dtype.kind == "f":
            value = rng.standard_normal(shape)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, size=shape)
        else:
            value = np.zeros(shape)
        inputs.append(np.asarray(value).astype(dtype))
    return inputs, f"random {dtype} inputs (the input is not [1, stride, {C.MEL_BINS}])"

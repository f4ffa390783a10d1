"""ESPHome compatibility verifier: does a .tflite (and its manifest) satisfy the device contract?

The flatbuffer is parsed with the TFLite schema (`ai_edge_litert.schema_py_generated`), the model is
run with the TFLite Micro reference interpreter (`tflite_micro`), the runtime ESPHome embeds, for a
few hundred streaming steps on device-quantized features of synthetic audio. TensorFlow is never
imported. Every expected value comes from `mww.constants`. Every failed check carries a one-line
`fix` telling the user what to do.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mww import constants as C

# The TFLite Micro Python wrapper dereferences a null allocator (segfault) when the arena cannot
# even hold the interpreter's own bookkeeping (about 0.5 kB), so arena probes never go below this.
ARENA_PROBE_FLOOR = 1024
# TFLite Micro aligns every arena buffer to 16 bytes, so measured minima come in 16-byte steps.
ARENA_ALIGNMENT = 16

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {
    code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")
}
_WEIGHTED_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
)
_SCALE_TOLERANCE = 1e-6
_MAX_ITEMSIZE = 8  # bytes per element assumed when sizing the tensor-preserving arena
# Streaming invocations the verifier runs by default (300 calls of stride 3 = 9 s of audio).
DEFAULT_INVOKE_STEPS = 300
# Length of the synthetic clip (tone + noise) that is looped to feed the streaming invocations.
SYNTHETIC_CLIP_SECONDS = 2.0
# The arena a failed manifest check recommends: measured + 10 % + 1 KiB, rounded up to 16 bytes.
# Same rule as mww.export.declared_arena_size (not imported: mww.export imports TensorFlow).
ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_BYTES = 1024
MANIFEST_KEYS = ("type", "wake_word", "model", "trained_languages", "version", "micro")
MANIFEST_MICRO_KEYS = (
    "probability_cutoff",
    "feature_step_size",
    "sliding_window_size",
    "tensor_arena_size",
    "minimum_esphome_version",
)


class VerifyError(Exception):
    """Input the verifier cannot work on (missing file, not a TFLite model, manifest not JSON)."""


class AllocationError(VerifyError):
    """The model does not allocate in TFLite Micro even with the largest arena tried."""


@dataclass
class TensorInfo:
    """One model input or output tensor."""

    name: str
    dtype: str
    shape: list[int]
    scale: float | None
    zero_point: int | None


@dataclass
class ModelReport:
    """What the flatbuffer says about a model."""

    path: str
    file_size_bytes: int
    subgraph_count: int
    ops_per_subgraph: list[list[str]]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    resource_variables: int
    var_handle_ops: int
    parameters: int

    @property
    def ops_used(self) -> list[str]:
        """Every op the model uses, over all subgraphs, sorted."""
        return sorted({op for ops in self.ops_per_subgraph for op in ops})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the report."""
        data = asdict(self)
        data["ops_used"] = self.ops_used
        return data


@dataclass
class Check:
    """One named check: passed or not, with a one-line detail and, when failed, a one-line fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.passed:
            self.fix = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the check."""
        return asdict(self)


@dataclass
class VerificationResult:
    """The report, every check, and the arena numbers of one verified model."""

    report: ModelReport
    checks: list[Check]
    manifest_path: str | None = None
    measured_arena: int | None = None
    declared_arena: int | None = None
    outputs_seen: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: ok, report, checks and arena sizes."""
        return {
            "ok": self.ok,
            "model": self.report.path,
            "manifest": self.manifest_path,
            "measured_arena": self.measured_arena,
            "declared_arena": self.declared_arena,
            "report": self.report.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
        }


# --- Parsing ---


def _read_model_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise VerifyError(
            f"Model file {path} does not exist or is not a file. Pass the path of the exported "
            ".tflite model (for example models/<wake_word>.tflite)."
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"Model file {path} cannot be read ({exc}); check its permissions.") from exc


def _parse_model(data: bytes, name: str) -> schema.Model:
    """The flatbuffer root of a TFLite model; VerifyError when `data` is not one."""
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise VerifyError(
            f"{name} is not a TFLite model: it lacks the 'TFL3' flatbuffer identifier. Pass the "
            ".tflite file that the exporter wrote, not a checkpoint, a manifest or a truncated copy."
        )
    try:
        model = schema.Model.GetRootAs(data, 0)
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for t in range(subgraph.TensorsLength()):
                subgraph.Tensors(t).ShapeAsNumpy()
            for o in range(subgraph.OperatorsLength()):
                subgraph.Operators(o).OpcodeIndex()
        for i in range(model.OperatorCodesLength()):
            model.OperatorCodes(i).BuiltinCode()
    except Exception as exc:
        raise VerifyError(
            f"{name} has a TFLite identifier but its flatbuffer is corrupt ({type(exc).__name__}: {exc}). "
            "Export the model again; the file is probably truncated or damaged."
        ) from exc
    if model.SubgraphsLength() == 0:
        raise VerifyError(f"{name} is a TFLite flatbuffer without any subgraph; export the model again.")
    return model


def _op_name(opcode: schema.OperatorCode) -> str:
    """Builtin op name of an operator code.

    `deprecated_builtin_code` (int8) holds codes below 127; newer ops store 127
    (PLACEHOLDER_FOR_GREATER_OP_CODES) there and the real code in `builtin_code`, while old files
    leave `builtin_code` at its default 0. The larger of the two is the op, as in TFLite itself.
    """
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.CustomCode()
        return f"CUSTOM:{custom.decode(errors='replace') if custom else '?'}"
    return _OP_NAMES.get(code, f"UNKNOWN_{code}")


def _tensor_info(subgraph: schema.SubGraph, index: int) -> TensorInfo:
    tensor = subgraph.Tensors(index)
    quant = tensor.Quantization()
    scale: float | None = None
    zero_point: int | None = None
    if quant is not None and quant.ScaleLength() > 0:
        scale = float(quant.Scale(0))
    if quant is not None and quant.ZeroPointLength() > 0:
        zero_point = int(quant.ZeroPoint(0))
    name = tensor.Name()
    return TensorInfo(
        name=name.decode(errors="replace") if name else "",
        dtype=_TYPE_NAMES.get(tensor.Type(), f"type_{tensor.Type()}"),
        shape=[int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else [],
        scale=scale,
        zero_point=zero_point,
    )


def _is_constant(model: schema.Model, tensor: schema.Tensor) -> bool:
    index = tensor.Buffer()
    if index <= 0 or index >= model.BuffersLength():
        return False
    buffer = model.Buffers(index)
    return buffer.DataLength() > 0 or buffer.Offset() > 1


@dataclass
class _Graph:
    """The report plus what the runtime checks need from the flatbuffer."""

    report: ModelReport
    read_outputs: list[int]  # READ_VARIABLE output tensors of subgraph 0
    dynamic_bytes: int  # generous size of every non-constant tensor, 16-byte aligned


def _analyze(data: bytes, path: Path) -> _Graph:
    model = _parse_model(data, str(path))
    try:
        return _walk(model, data, path)
    except (IndexError, ValueError, TypeError, OverflowError, struct.error) as exc:
        raise VerifyError(
            f"{path} has a TFLite identifier but its graph is inconsistent ({type(exc).__name__}: "
            f"{exc}). Export the model again; the file is probably damaged."
        ) from exc


def _walk(model: schema.Model, data: bytes, path: Path) -> _Graph:
    op_names = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    ops_per_subgraph: list[list[str]] = []
    variables: set[tuple[Any, ...]] = set()
    var_handle_ops = 0
    weight_tensors: set[tuple[int, int]] = set()
    parameters = 0
    read_outputs: list[int] = []
    dynamic_bytes = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if not _is_constant(model, tensor):
                elements = _elements(tensor)
                dynamic_bytes += -(-elements * _MAX_ITEMSIZE // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
        used: set[str] = set()
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            idx = op.OpcodeIndex()
            name = op_names[idx] if idx < len(op_names) else f"UNKNOWN_OPCODE_INDEX_{idx}"
            used.add(name)
            if name == "VAR_HANDLE":
                var_handle_ops += 1
                variables.add(_variable_key(op, s, o))
            elif name == "READ_VARIABLE" and s == 0 and op.OutputsLength() > 0:
                read_outputs.append(int(op.Outputs(0)))
            elif name in _WEIGHTED_OPS:
                for k in range(1, op.InputsLength()):
                    t = op.Inputs(k)
                    if t < 0 or (s, t) in weight_tensors:
                        continue
                    tensor = subgraph.Tensors(t)
                    if _is_constant(model, tensor):
                        weight_tensors.add((s, t))
                        parameters += _elements(tensor)
        ops_per_subgraph.append(sorted(used))
    main = model.Subgraphs(0)
    report = ModelReport(
        path=str(path),
        file_size_bytes=len(data),
        subgraph_count=model.SubgraphsLength(),
        ops_per_subgraph=ops_per_subgraph,
        inputs=[_tensor_info(main, main.Inputs(i)) for i in range(main.InputsLength())],
        outputs=[_tensor_info(main, main.Outputs(i)) for i in range(main.OutputsLength())],
        resource_variables=len(variables),
        var_handle_ops=var_handle_ops,
        parameters=parameters,
    )
    return _Graph(report, read_outputs, dynamic_bytes)


def _elements(tensor: schema.Tensor) -> int:
    return math.prod(max(int(d), 1) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1


def _variable_key(op: schema.Operator, subgraph: int, index: int) -> tuple[Any, ...]:
    """A resource variable's identity: (container, shared_name), as TFLite Micro keys it."""
    table = op.BuiltinOptions()
    if table is not None:
        options = schema.VarHandleOptions()
        options.Init(table.Bytes, table.Pos)
        container, shared = options.Container() or b"", options.SharedName() or b""
        if container or shared:
            return ("named", container, shared)
    return ("unnamed", subgraph, index)


def analyze_model_architecture(tflite_path: str | os.PathLike[str]) -> ModelReport:
    """Parse a .tflite file: size, subgraphs, ops per subgraph, I/O tensors, resource variables.

    `resource_variables` counts distinct variables (VAR_HANDLE ops keyed by container and shared
    name, which is what ESPHome's resource-variable capacity limits); the main and the CALL_ONCE
    subgraph each hold a VAR_HANDLE per variable, counted in `var_handle_ops`. `parameters` is the
    number of elements of the constant weight and bias tensors of weighted layers.
    """
    path = Path(tflite_path)
    return _analyze(_read_model_bytes(path), path).report


# --- Running in TFLite Micro ---


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
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


def _interpreter(model_bytes: bytes, arena_size: int, preserve: bool = False) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve
        else runtime.InterpreterConfig.kAllocationRecording
    )
    return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size, intrepreter_config=config)


def _zero_inputs(interpreter: Any, count: int) -> list[np.ndarray]:
    inputs = []
    for i in range(count):
        details = interpreter.get_input_details(i)
        inputs.append(np.zeros([int(d) for d in details["shape"]], dtype=details["dtype"]))
    return inputs


def _fits(model_bytes: bytes, arena_size: int, input_count: int) -> bool:
    """Whether the model allocates in `arena_size` bytes and survives one invocation (CALL_ONCE)."""
    try:
        interpreter = _interpreter(model_bytes, arena_size)
        for i, value in enumerate(_zero_inputs(interpreter, input_count)):
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
    model = _parse_model(model_bytes, "model bytes")
    input_count = model.Subgraphs(0).InputsLength()
    upper = max(int(upper), ARENA_PROBE_FLOOR)
    with _native_stderr() as log:
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

    The clip is repeated in the audio domain and run through one front end (mww.features), so the
    stream is continuous, as on the device; the result is cut (or, if short, tiled) to `frames`.
    """
    from mww.features import audio_to_uint16_features

    clip = synthetic_clip(seed)
    needed = (frames + 1) * C.STEP_SAMPLES + C.WINDOW_SAMPLES
    audio = np.tile(clip, -(-needed // len(clip)))[:needed]
    features = audio_to_uint16_features(audio)
    if len(features) == 0:
        return np.zeros((frames, C.MEL_BINS), dtype=np.uint16)
    return np.resize(features, (frames, C.MEL_BINS)).astype(np.uint16)


def _device_inputs(
    shape: list[int], dtype: np.dtype, steps: int, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Inputs as the device writes them, and a few words saying what they are.

    For the device layout [1, stride, 40]: uint16 front-end features of synthetic audio
    (`stream_features`), sliced into chunks of `stride` frames, converted with the device's integer
    rule (mww.features.quantize_uint16). A float input gets the value that int8 stands for; any
    other layout gets plain random data of its dtype.
    """
    from mww.features import dequantize_input, quantize_uint16

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


_FIX_RUN = "re-export with mww-export; the model must allocate and run in TFLite Micro with uint8 output"
_FIX_STATE = (
    "export the streaming (stateful) model with mww-export, not the non-streaming one: "
    "ESPHome feeds one stride of frames per call and the model must keep the rest in its variables"
)


def _run_checks(model_bytes: bytes, graph: _Graph, arena: int, steps: int) -> tuple[list[Check], list[int]]:
    """Invoke `steps` times at the measured arena, as the device would; then check the state."""
    outputs: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    with _native_stderr() as log:
        try:
            device = _interpreter(model_bytes, arena)
            details = device.get_input_details(0)
            inputs, what = _device_inputs([int(d) for d in details["shape"]], details["dtype"], steps)
            for value in inputs:
                device.set_input(value, 0)
                device.invoke()
                outputs.append(np.array(device.get_output(0)))
            failure = None
        except (RuntimeError, ValueError, TypeError) as exc:
            failure = str(exc)
    if failure is not None:
        said = " / ".join(line.strip() for line in log[-2:] if line.strip()) or "no message"
        return [
            Check(
                "invoke",
                False,
                f"invocation {len(outputs) + 1} of {steps} failed in TFLite Micro: {failure} ({said})",
                _FIX_RUN,
            ),
            Check("state", False, "not checked: the model does not run", _FIX_RUN),
        ], []
    dtypes = sorted({str(o.dtype) for o in outputs})
    low = min(float(o.min()) for o in outputs)
    high = max(float(o.max()) for o in outputs)
    if dtypes == [C.OUTPUT_DTYPE] and low >= 0 and high <= C.OUTPUT_UINT8_MAX:
        seen = [int(o.reshape(-1)[0]) for o in outputs]
        invoke = Check(
            "invoke",
            True,
            f"{steps} streaming invocations at the measured arena on {what}; "
            f"uint8 outputs in [{int(low)}, {int(high)}]",
        )
    else:
        seen = []
        invoke = Check(
            "invoke",
            False,
            f"{steps} invocations ran but the outputs are {', '.join(dtypes)} in [{low:g}, {high:g}], "
            f"not {C.OUTPUT_DTYPE} in [0, {C.OUTPUT_UINT8_MAX}]",
            "export with inference_output_type uint8 (mww-export does this)",
        )
    return [invoke, _state_check(model_bytes, graph, arena, inputs)], seen


def _state_check(model_bytes: bytes, graph: _Graph, arena: int, inputs: list[np.ndarray]) -> Check:
    """The values read from the resource variables must change as inputs stream in.

    Runs a tensor-preserving interpreter (its arena holds every tensor at once, so it is larger
    than the planned one) and compares each READ_VARIABLE output with its value at the first call;
    it stops as soon as every read has changed.
    """
    reads = graph.read_outputs
    if graph.report.resource_variables == 0 or not reads:
        return Check(
            "state",
            False,
            "the model keeps no state between invocations (no resource variables)",
            _FIX_STATE,
        )
    changed = 0
    calls = 0
    with _native_stderr():
        try:
            interpreter = _interpreter(model_bytes, arena + graph.dynamic_bytes + 4096, preserve=True)
            first: list[np.ndarray] = []
            for value in inputs:
                interpreter.set_input(value, 0)
                interpreter.invoke()
                calls += 1
                state = [np.array(interpreter.GetTensor(t, 0)["tensor_data"]) for t in reads]
                if not first:
                    first = state
                    continue
                changed = max(
                    changed, sum(not np.array_equal(a, b) for a, b in zip(first, state, strict=True))
                )
                if changed == len(reads):
                    break
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            return Check("state", False, f"could not inspect the variables in TFLite Micro: {exc}", _FIX_RUN)
    if changed == 0:
        return Check(
            "state",
            False,
            f"none of the {len(reads)} variable reads changed over {len(inputs)} invocations",
            _FIX_STATE,
        )
    return Check(
        "state", True, f"{changed} of {len(reads)} variable reads changed within {calls} invocations"
    )


# --- Checks ---


def _close(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) <= _SCALE_TOLERANCE


_FIX_TENSOR = {
    "input.dtype": "export with inference_input_type int8 (mww-export does this)",
    "input.scale": (
        f"quantize the input with scale 26/255 and zero point {C.INPUT_ZERO_POINT}, the values the device "
        "assumes: re-export with mww-export (its calibration pins them)"
    ),
    "output.dtype": "export with inference_output_type uint8 (mww-export does this)",
    "output.scale": (
        "end the model in one sigmoid unit and export with inference_output_type uint8 "
        "(scale 1/256, zero point 0; mww-export does this)"
    ),
}
_FIX_TENSOR["input.zero_point"] = _FIX_TENSOR["input.scale"]
_FIX_TENSOR["output.zero_point"] = _FIX_TENSOR["output.scale"]


def _tensor_checks(prefix: str, info: TensorInfo, dtype: str, scale: float, zero_point: int) -> list[Check]:
    return [
        Check(
            f"{prefix}.dtype",
            info.dtype == dtype,
            f"{info.dtype} (expected {dtype})",
            _FIX_TENSOR[f"{prefix}.dtype"],
        ),
        Check(
            f"{prefix}.scale",
            _close(info.scale, scale),
            f"{info.scale!r} (expected {scale!r} ± {_SCALE_TOLERANCE:g})",
            _FIX_TENSOR[f"{prefix}.scale"],
        ),
        Check(
            f"{prefix}.zero_point",
            info.zero_point == zero_point,
            f"{info.zero_point} (expected {zero_point})",
            _FIX_TENSOR[f"{prefix}.zero_point"],
        ),
    ]


def _structure_checks(report: ModelReport) -> list[Check]:
    checks = [
        Check(
            "subgraphs",
            report.subgraph_count == C.EXPECTED_SUBGRAPHS,
            f"{report.subgraph_count} (expected {C.EXPECTED_SUBGRAPHS}: main + CALL_ONCE initialisation)",
            "re-export the streaming model with mww-export: its variables must be initialised by a "
            "CALL_ONCE subgraph",
        )
    ]
    offending = [op for op in report.ops_used if op not in C.ALLOWED_OPS]
    checks.append(
        Check(
            "ops",
            not offending,
            f"not registered by ESPHome: {', '.join(offending)}"
            if offending
            else f"all {len(report.ops_used)} ops are registered by ESPHome",
            "re-export with mww-export; the architecture uses an op ESPHome does not register: "
            + ", ".join(offending),
        )
    )
    io_ok = len(report.inputs) == 1 and len(report.outputs) == 1
    checks.append(
        Check(
            "io",
            io_ok,
            f"{len(report.inputs)} input(s), {len(report.outputs)} output(s) (expected 1 and 1)",
            "export a model with one input (the features) and one output (the probability)",
        )
    )
    if report.inputs:
        info = report.inputs[0]
        shape_ok = len(info.shape) == 3 and info.shape[0] == 1 and info.shape[1] >= 1
        shape_ok = shape_ok and info.shape[2] == C.MEL_BINS
        stride = f"stride {info.shape[1]}" if shape_ok else "expected [1, stride, " + f"{C.MEL_BINS}]"
        checks.append(
            Check(
                "input.shape",
                shape_ok,
                f"{info.shape} ({stride})",
                f"export the streaming model, whose input is [1, stride, {C.MEL_BINS}] "
                "(mww-export does this)",
            )
        )
        checks += _tensor_checks("input", info, C.INPUT_DTYPE, C.INPUT_SCALE, C.INPUT_ZERO_POINT)
    if report.outputs:
        info = report.outputs[0]
        checks.append(
            Check(
                "output.shape",
                info.shape == [1, 1],
                f"{info.shape} (expected [1, 1])",
                "end the model in a single sigmoid unit so the output is [1, 1]",
            )
        )
        checks += _tensor_checks("output", info, C.OUTPUT_DTYPE, C.OUTPUT_SCALE, C.OUTPUT_ZERO_POINT)
    checks.append(
        Check(
            "resource_variables",
            report.resource_variables <= C.MAX_RESOURCE_VARIABLES,
            f"{report.resource_variables} (at most {C.MAX_RESOURCE_VARIABLES})",
            f"use fewer stateful (streaming) layers: ESPHome holds at most {C.MAX_RESOURCE_VARIABLES} "
            "resource variables",
        )
    )
    return checks


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _got(value: object) -> str:
    """`value` as the detail shows it: repr plus the JSON type when that is the problem."""
    kinds = {bool: "boolean", str: "string", list: "list", dict: "object", float: "number", int: "integer"}
    kind = kinds.get(type(value), "null" if value is None else type(value).__name__)
    return f"{value!r} ({kind})"


def _value_check(name: str, ok: bool, value: object, expected: str, fix: str) -> Check:
    """A manifest value check; a failed one also names the JSON type of the value it got."""
    shown = repr(value) if ok else _got(value)
    return Check(name, ok, f"{shown} (expected {expected})", fix)


def _same_file(named: Path, model_bytes: bytes | None) -> bool:
    if model_bytes is None:
        return True
    try:
        return named.stat().st_size == len(model_bytes) and named.read_bytes() == model_bytes
    except OSError:
        return False


def _model_check(
    data: dict[str, Any], model_name: str | None, manifest_dir: Path | None, model_bytes: bytes | None
) -> Check | None:
    """The manifest's `model` must name a file next to the manifest, and that file must be the model."""
    named = data.get("model")
    if not isinstance(named, str) or not named.strip():
        if "model" not in data:
            return None  # reported by manifest.keys
        return Check(
            "manifest.model",
            False,
            f"{_got(named)} (expected the .tflite file name)",
            'set "model" to the file name of the .tflite next to the manifest'
            + (f", e.g. {model_name!r}" if model_name else ""),
        )
    if manifest_dir is not None:
        path = manifest_dir / named
        if not path.is_file():
            return Check(
                "manifest.model",
                False,
                f"{named!r} does not exist next to the manifest (in {manifest_dir})"
                + (f"; the verified model is {model_name!r}" if model_name and model_name != named else ""),
                f"put {named} next to the manifest or fix the model field",
            )
    if model_name is None:
        return Check("manifest.model", True, f"{named!r}" + (" (exists)" if manifest_dir else ""))
    if named != model_name:
        return Check(
            "manifest.model",
            False,
            f"{named!r} (the verified model file is {model_name!r})",
            f'set "model" to {model_name!r}, or verify {named} instead',
        )
    if manifest_dir is not None and not _same_file(manifest_dir / named, model_bytes):
        return Check(
            "manifest.model",
            False,
            f"{named!r} next to the manifest is not the verified model (the contents differ)",
            f"copy the verified model next to the manifest as {named}, or verify that file instead",
        )
    return Check(
        "manifest.model",
        True,
        f"{named!r}" + (" exists next to the manifest" if manifest_dir is not None else ""),
    )


def validate_manifest(
    data: dict[str, Any],
    model_name: str | None,
    measured_arena: int | None = None,
    manifest_dir: str | os.PathLike[str] | None = None,
    model_bytes: bytes | None = None,
) -> list[Check]:
    """Checks of an ESPHome v2 manifest: required keys, their values and types.

    `model_name` (the verified .tflite's file name) and the measured arena, when given, are
    compared with the manifest's `model` and `tensor_arena_size`. With `manifest_dir` (the folder
    holding the manifest) the file `model` names must exist there, as ESPHome loads it from there;
    with `model_bytes` too, it must be the verified model.
    """
    if not isinstance(data, dict):
        return [
            Check(
                "manifest.keys",
                False,
                f"the manifest is a JSON {type(data).__name__}, not an object",
                "write the manifest as a JSON object (mww-export writes one next to the model)",
            )
        ]
    micro = data.get("micro")
    micro = micro if isinstance(micro, dict) else {}
    missing = [key for key in MANIFEST_KEYS if key not in data]
    if "micro" in data and not isinstance(data["micro"], dict):
        missing.append("micro (not an object)")
    missing += [f"micro.{key}" for key in MANIFEST_MICRO_KEYS if key not in micro]
    checks = [
        Check(
            "manifest.keys",
            not missing,
            f"missing: {', '.join(missing)}" if missing else "all required v2 keys present",
            f"add the missing keys to the manifest: {', '.join(missing)}",
        ),
        Check(
            "manifest.type",
            data.get("type") == C.MANIFEST_TYPE,
            f"{data.get('type')!r} (expected {C.MANIFEST_TYPE!r})",
            f'set "type" to "{C.MANIFEST_TYPE}"',
        ),
        _value_check(
            "manifest.version",
            data.get("version") == C.MANIFEST_VERSION and not isinstance(data.get("version"), bool),
            data.get("version"),
            f"{C.MANIFEST_VERSION}",
            f'set "version" to {C.MANIFEST_VERSION} (an integer)',
        ),
    ]
    if "wake_word" in data:
        word = data["wake_word"]
        word_ok = isinstance(word, str) and bool(word.strip())
        checks.append(
            Check(
                "manifest.wake_word",
                word_ok,
                f"{word!r}" if word_ok else f"{_got(word)} (expected a non-empty string)",
                'set "wake_word" to the phrase as a string, e.g. "Hey Computer"',
            )
        )
    if "trained_languages" in data:
        languages = data["trained_languages"]
        languages_ok = isinstance(languages, list) and all(isinstance(x, str) for x in languages)
        checks.append(
            Check(
                "manifest.trained_languages",
                languages_ok,
                f"{languages!r}" if languages_ok else f"{_got(languages)} (expected a list of strings)",
                'set "trained_languages" to a list of language codes, e.g. ["en"]',
            )
        )
    step = micro.get("feature_step_size")
    checks.append(
        _value_check(
            "manifest.feature_step_size",
            step == C.FEATURE_STEP_SIZE_MS and not isinstance(step, bool),
            step,
            f"{C.FEATURE_STEP_SIZE_MS} ms",
            f"set micro.feature_step_size to {C.FEATURE_STEP_SIZE_MS} (the front end's step in ms)",
        )
    )
    cutoff = micro.get("probability_cutoff")
    checks.append(
        _value_check(
            "manifest.probability_cutoff",
            _is_number(cutoff) and 0 < cutoff <= 1,
            cutoff,
            "a number, 0 < cutoff <= 1",
            "set micro.probability_cutoff to a number in (0, 1], e.g. 0.97 (no quotes)",
        )
    )
    window = micro.get("sliding_window_size")
    checks.append(
        _value_check(
            "manifest.sliding_window_size",
            _is_int(window) and window >= 1,
            window,
            "an integer >= 1",
            "set micro.sliding_window_size to an integer >= 1, e.g. 5 (no quotes)",
        )
    )
    model_check = _model_check(
        data, model_name, Path(manifest_dir) if manifest_dir is not None else None, model_bytes
    )
    if model_check is not None and (model_name is not None or manifest_dir is not None):
        checks.append(model_check)
    arena = micro.get("tensor_arena_size")
    if not (_is_int(arena) and arena > 0):
        wanted = (
            f"at least {declared_arena_size(measured_arena)} (measured + margin)"
            if measured_arena is not None
            else "a positive integer number of bytes (mww-export measures it)"
        )
        checks.append(
            Check(
                "manifest.tensor_arena_size",
                False,
                f"{_got(arena)} (expected a positive integer)",
                f"set micro.tensor_arena_size to {wanted}",
            )
        )
    elif measured_arena is not None:
        margin = 100.0 * (arena - measured_arena) / measured_arena
        enough = arena >= measured_arena
        checks.append(
            Check(
                "manifest.tensor_arena_size",
                enough,
                f"declares {arena} B, measured {measured_arena} B: margin {margin:+.1f} %"
                + ("" if enough else " (too small: the device would fail to allocate)"),
                f"set micro.tensor_arena_size to at least {declared_arena_size(measured_arena)} "
                "(measured + margin)",
            )
        )
    else:
        checks.append(Check("manifest.tensor_arena_size", True, f"declares {arena} B (not measured)"))
    return checks


def _load_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise VerifyError(
            f"Manifest {path} does not exist or is not a file. Pass the v2 JSON manifest written next "
            "to the model, or leave out --manifest to verify the model alone."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyError(
            f"Manifest {path} is not valid JSON ({exc}). ESPHome needs a version 2 JSON manifest; "
            "export the model again or fix the file."
        ) from exc
    if not isinstance(data, dict):
        raise VerifyError(
            f"Manifest {path} holds a JSON {type(data).__name__}, not an object; an ESPHome v2 "
            "manifest is a JSON object with type, wake_word, model, version and micro keys."
        )
    return data


def verify_model(
    tflite_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str] | None = None,
    invoke_steps: int = DEFAULT_INVOKE_STEPS,
) -> VerificationResult:
    """Run every ESPHome check on a model and, if given or found next to it as <model>.json, its manifest.

    The model's arena is measured, then it runs for `invoke_steps` streaming invocations in TFLite
    Micro on device-quantized features of synthetic audio. Raises VerifyError on input that cannot
    be verified at all (missing file, not a TFLite model, manifest not JSON); everything else
    becomes a failed check, with a one-line fix.
    """
    if invoke_steps < 2:
        raise ValueError("invoke_steps must be at least 2 to see state carry between invocations")
    path = Path(tflite_path)
    data = _read_model_bytes(path)
    graph = _analyze(data, path)
    report = graph.report
    manifest_file = Path(manifest_path) if manifest_path is not None else path.with_suffix(".json")
    manifest = _load_manifest(manifest_file) if manifest_path is not None or manifest_file.is_file() else None

    checks = _structure_checks(report)
    measured: int | None = None
    seen: list[int] = []
    try:
        measured = measure_tensor_arena(data)
    except AllocationError as exc:
        checks.append(Check("arena", False, str(exc), _FIX_RUN))
    if measured is not None:
        checks.append(
            Check(
                "arena",
                True,
                f"allocates in TFLite Micro with {measured} B (minimum, {ARENA_ALIGNMENT}-byte steps)",
            )
        )
        run_checks, seen = _run_checks(data, graph, measured, invoke_steps)
        checks += run_checks

    declared: int | None = None
    if manifest is not None:
        checks += validate_manifest(manifest, path.name, measured, manifest_file.parent, data)
        micro = manifest.get("micro")
        value = micro.get("tensor_arena_size") if isinstance(micro, dict) else None
        declared = value if isinstance(value, int) and not isinstance(value, bool) else None
    return VerificationResult(
        report=report,
        checks=checks,
        manifest_path=str(manifest_file) if manifest is not None else None,
        measured_arena=measured,
        declared_arena=declared,
        outputs_seen=seen,
    )

"""What a .tflite flatbuffer holds: subgraphs, ops, input/output tensors, resource variables.

Parsed with the TFLite schema (`ai_edge_litert.schema_py_generated`); TensorFlow is never
imported. `analyze_model_architecture` is the public entry; `analyze_bytes` also returns what the
verifier's runtime checks need (the READ_VARIABLE outputs and a generous arena bound).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ai_edge_litert import schema_py_generated as schema

from mww.errors import MwwError

# TFLite Micro aligns every arena buffer to 16 bytes, so measured minima come in 16-byte steps.
ARENA_ALIGNMENT = 16

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {
    code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")
}
_WEIGHTED_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
)
_MAX_ITEMSIZE = 8  # bytes per element assumed when sizing the tensor-preserving arena


class VerifyError(MwwError):
    """Input the verifier cannot work on (missing file, not a TFLite model, manifest not JSON)."""


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


def read_model_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise VerifyError(
            f"Model file {path} does not exist or is not a file. Pass the path of the exported "
            ".tflite model (for example models/<wake_word>.tflite)."
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"Model file {path} cannot be read ({exc}); check its permissions.") from exc


def parse_model(data: bytes, name: str) -> schema.Model:
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
class ModelGraph:
    """The report plus what the runtime checks need from the flatbuffer."""

    report: ModelReport
    read_outputs: list[int]  # READ_VARIABLE output tensors of subgraph 0
    dynamic_bytes: int  # generous size of every non-constant tensor, 16-byte aligned


def analyze_bytes(data: bytes, path: Path) -> ModelGraph:
    model = parse_model(data, str(path))
    try:
        return _walk(model, data, path)
    except (IndexError, ValueError, TypeError, OverflowError, struct.error) as exc:
        raise VerifyError(
            f"{path} has a TFLite identifier but its graph is inconsistent ({type(exc).__name__}: "
            f"{exc}). Export the model again; the file is probably damaged."
        ) from exc


def _walk(model: schema.Model, data: bytes, path: Path) -> ModelGraph:
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
    return ModelGraph(report, read_outputs, dynamic_bytes)


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
    return analyze_bytes(read_model_bytes(path), path).report

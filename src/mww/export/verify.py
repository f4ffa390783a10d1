"""ESPHome compatibility verifier: does a .tflite (and its manifest) satisfy the device contract?

The flatbuffer is read by `mww.device.tflite_graph` (ops, tensors, resource variables) and the model is
run by `mww.device.tflm_arena` in the TFLite Micro reference interpreter (`tflite_micro`), the runtime
ESPHome embeds, for a few hundred streaming steps on device-quantized features of synthetic audio;
this module turns what they find into named checks (`mww.export.check.Check`), and adds the
manifest's (`mww.export.manifest_checks`). TensorFlow is never imported. Every expected value comes
from `mww.device.constants`. Every failed check carries a one-line `fix` telling the user what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mww.device import constants as C
from mww.device.tflite_graph import (
    ARENA_ALIGNMENT,
    ModelGraph,
    ModelReport,
    TensorInfo,
    VerifyError,
    analyze_bytes,
    analyze_model_architecture,
    read_model_bytes,
)
from mww.device.tflm_arena import (
    AllocationError,
    declared_arena_size,
    device_inputs,
    measure_tensor_arena,
    micro_interpreter,
    native_stderr,
)
from mww.export.check import Check
from mww.export.manifest_checks import manifest_warnings, read_manifest, validate_manifest

__all__ = [
    "DEFAULT_INVOKE_STEPS",
    "AllocationError",
    "ModelReport",
    "TensorInfo",
    "VerificationResult",
    "VerifyError",
    "analyze_model_architecture",
    "declared_arena_size",
    "measure_tensor_arena",
    "verify_model",
]

_SCALE_TOLERANCE = 1e-6
# Streaming invocations the verifier runs by default (300 calls of stride 3 = 9 s of audio).
DEFAULT_INVOKE_STEPS = 300


@dataclass
class VerificationResult:
    """The report, every check, and the arena numbers of one verified model."""

    report: ModelReport
    checks: list[Check]
    manifest_path: str | None = None
    measured_arena: int | None = None
    declared_arena: int | None = None
    outputs_seen: list[int] = field(default_factory=list)
    # What the device accepts but a user should know (they do not fail the verification).
    warnings: list[str] = field(default_factory=list)

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
            "warnings": self.warnings,
        }


_FIX_RUN = "re-export with mww-export; the model must allocate and run in TFLite Micro with uint8 output"
_FIX_STATE = (
    "export the streaming (stateful) model with mww-export, not the non-streaming one: "
    "ESPHome feeds one stride of frames per call and the model must keep the rest in its variables"
)


def _run_checks(
    model_bytes: bytes, graph: ModelGraph, arena: int, steps: int
) -> tuple[list[Check], list[int]]:
    """Invoke `steps` times at the measured arena, as the device would; then check the state."""
    outputs: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    with native_stderr() as log:
        try:
            device = micro_interpreter(model_bytes, arena)
            details = device.get_input_details(0)
            inputs, what = device_inputs([int(d) for d in details["shape"]], details["dtype"], steps)
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


def _state_check(model_bytes: bytes, graph: ModelGraph, arena: int, inputs: list[np.ndarray]) -> Check:
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
    with native_stderr():
        try:
            interpreter = micro_interpreter(model_bytes, arena + graph.dynamic_bytes + 4096, preserve=True)
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
    data = read_model_bytes(path)
    graph = analyze_bytes(data, path)
    report = graph.report
    manifest_file = Path(manifest_path) if manifest_path is not None else path.with_suffix(".json")
    manifest = read_manifest(manifest_file) if manifest_path is not None or manifest_file.is_file() else None

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
        warnings=manifest_warnings(manifest) if manifest is not None else [],
        report=report,
        checks=checks,
        manifest_path=str(manifest_file) if manifest is not None else None,
        measured_arena=measured,
        declared_arena=declared,
        outputs_seen=seen,
    )

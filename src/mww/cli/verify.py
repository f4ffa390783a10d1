"""mww-verify: check that a .tflite model (and its v2 manifest) will run in ESPHome's micro_wake_word.

The model is run in TFLite Micro (the runtime ESPHome embeds) for --steps streaming invocations on
device-quantized features of synthetic audio. Every check prints as a ✓/✗ line; a failed one
is followed by a "fix:" line saying what to do.

Exit status: 0 when every check passes, 1 when any check fails, 2 when the input cannot be verified.
"""

from __future__ import annotations

import argparse
import json
import sys

from mww.cli import Parser, checked, run_command
from mww.export.verify import DEFAULT_INVOKE_STEPS, TensorInfo, VerificationResult, verify_model

PASS_MARK = "✓"
FAIL_MARK = "✗"
_ASCII_MARKS = ("+", "x")  # where stdout cannot encode the check marks (e.g. a cp1252 console)


_steps = checked(
    int, "an integer", lambda v: v >= 2, "needs at least 2 steps to see state carry between invocations"
)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mww-verify", description=__doc__)
    parser.add_argument("model", help="the .tflite model to verify")
    parser.add_argument(
        "--manifest", help="the v2 JSON manifest (default: <model>.json next to the model, if present)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also print tensor details and ops per subgraph"
    )
    parser.add_argument(
        "--steps",
        type=_steps,
        default=DEFAULT_INVOKE_STEPS,
        metavar="N",
        help=f"streaming invocations to run in TFLite Micro (default {DEFAULT_INVOKE_STEPS})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the list")
    return parser


def _tensor_line(info: TensorInfo) -> str:
    return (
        f"  {info.name or '(unnamed)'}: {info.dtype} {info.shape}, "
        f"scale {info.scale!r}, zero point {info.zero_point}"
    )


def _arena_line(result: VerificationResult) -> str:
    measured = (
        f"measured {result.measured_arena} B (TFLite Micro reference kernels)"
        if result.measured_arena is not None
        else "not measured (the model does not allocate)"
    )
    if result.declared_arena is None:
        declared = "no manifest declares a size" if result.manifest_path is None else "manifest declares none"
    elif result.measured_arena:
        margin = 100.0 * (result.declared_arena - result.measured_arena) / result.measured_arena
        declared = f"manifest declares {result.declared_arena} B ({margin:+.1f} %)"
    else:
        declared = f"manifest declares {result.declared_arena} B"
    return f"Tensor arena: {measured}; {declared}"


def _marks() -> tuple[str, str]:
    """✓ and ✗, or ASCII stand-ins when stdout cannot encode them."""
    try:
        (PASS_MARK + FAIL_MARK).encode(sys.stdout.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return _ASCII_MARKS
    return PASS_MARK, FAIL_MARK


def format_result(
    result: VerificationResult, verbose: bool = False, marks: tuple[str, str] = (PASS_MARK, FAIL_MARK)
) -> str:
    """The human-readable report: header, ✓/✗ list of checks with a fix under each failure, arena,
    ops and verdict."""
    report = result.report
    lines = [
        f"Model     {report.path} ({report.file_size_bytes} bytes, {report.subgraph_count} subgraphs, "
        f"{report.parameters} parameters, {report.resource_variables} resource variables)",
        f"Manifest  {result.manifest_path or '(none)'}",
        "",
    ]
    width = max(len(c.name) for c in result.checks) + 2 if result.checks else 0
    for check in result.checks:
        lines.append(f"{marks[0] if check.passed else marks[1]} {check.name:<{width}}{check.detail}")
        if not check.passed and check.fix:
            lines.append(f"    fix: {check.fix}")
    lines += ["", _arena_line(result), f"Ops used ({len(report.ops_used)}): {', '.join(report.ops_used)}"]
    if verbose:
        lines.append("Inputs:")
        lines += [_tensor_line(info) for info in report.inputs]
        lines.append("Outputs:")
        lines += [_tensor_line(info) for info in report.outputs]
        for index, ops in enumerate(report.ops_per_subgraph):
            lines.append(f"Subgraph {index} ({len(ops)} ops): {', '.join(ops)}")
        lines.append(f"VAR_HANDLE ops: {report.var_handle_ops}")
        if result.outputs_seen:
            lines.append(f"Outputs seen (uint8): {result.outputs_seen}")
    failed = result.failed
    if failed:
        names = ", ".join(c.name for c in failed)
        lines.append(f"Result: FAILED, {len(failed)} of {len(result.checks)} checks failed: {names}")
    else:
        lines.append(f"Result: OK, all {len(result.checks)} checks passed")
    lines += [f"Warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def _verify(args: argparse.Namespace) -> int:
    result = verify_model(args.model, args.manifest, invoke_steps=args.steps)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result, verbose=args.verbose, marks=_marks()))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_command("mww-verify", _parser(), _verify, argv)


if __name__ == "__main__":
    raise SystemExit(main())

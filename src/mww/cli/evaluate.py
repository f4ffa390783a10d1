"""mww-evaluate: measure a checkpoint or an exported model on a split, the way the device runs it.

Prints recall, false activations per hour on real audio durations, the recommended cutoff and
window, breakdowns per speaker and source, and the worst cases. Exit status: 0 on success, 2 on bad
input (the reason is printed as one paragraph).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from mww.cli import UsageError, run_command

if TYPE_CHECKING:
    from mww.config.schema import MwwConfig
    from mww.evaluate.measure import Evaluation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    from mww.config.load import add_config_arguments
    from mww.data.sources import NOISE_SNRS_DB

    parser = argparse.ArgumentParser(prog="mww-evaluate", description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="Keras weights (.weights.h5) written by mww-train")
    parser.add_argument("--tflite", default=None, help="an exported model (.tflite), run in TFLite Micro")
    parser.add_argument(
        "--manifest",
        default=None,
        help="the model's manifest, which gives the cutoff and window (default: <model>.json next to the "
        "--tflite model, if present)",
    )
    add_config_arguments(parser)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (test)")
    parser.add_argument(
        "--analyze", action="store_true", help="also run the int8 model and report the quantization gap"
    )
    parser.add_argument(
        "--noise-snr",
        nargs="*",
        type=float,
        default=None,
        metavar="DB",
        help="also measure recall with the dataset's background audio mixed into the positives at these "
        f"SNRs in dB (default: {' '.join(f'{snr:g}' for snr in NOISE_SNRS_DB)}; the flag alone: skip)",
    )
    parser.add_argument(
        "--positives",
        default=None,
        metavar="DIR",
        help="folder mode: evaluate the --tflite model on these recordings of the wake word (with --ambient) "
        "instead of a split of the dataset",
    )
    parser.add_argument(
        "--ambient",
        default=None,
        metavar="DIR",
        help="folder mode: recordings of a place without the wake word (a room, a night of TV), for false "
        "activations per hour",
    )
    parser.add_argument(
        "--convert",
        action="store_true",
        help="folder mode: resample and mix down recordings that are not 16 kHz mono 16-bit",
    )
    parser.add_argument(
        "--rule",
        default="esphome",
        choices=["esphome", "pymicro"],
        help="whose detector counts the figures at the model's settings: the ESP32's (esphome, default) or "
        "Home Assistant's pymicro-wakeword; the other is reported beside it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument(
        "--output-dir", default=None, help="write calibration.json, det_curve.png, score_histogram.png here"
    )
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from mww.config.load import config_from_args
    from mww.evaluate.report import format_report

    log = None if args.json else (lambda message: print(message, file=sys.stderr))
    config = config_from_args(args)
    if args.positives is not None or args.ambient is not None:
        result = _evaluate_folders(args, config, log)
    else:
        result = _evaluate_split(args, config, log)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print("\n".join(format_report(result)))
    return 0


def _evaluate_folders(args: argparse.Namespace, config: MwwConfig, log: Any) -> Evaluation:
    from mww.evaluate.folders import evaluate_folders

    if args.positives is None or args.ambient is None:
        raise UsageError("folder mode needs both --positives DIR and --ambient DIR")
    if args.checkpoint is not None or args.analyze:
        raise UsageError(
            "folder mode evaluates an exported model: pass --tflite, not --checkpoint or --analyze"
        )
    return evaluate_folders(
        config,
        positives=args.positives,
        ambient=args.ambient,
        convert=args.convert,
        **_model_and_output(args, log),
    )


def _evaluate_split(args: argparse.Namespace, config: MwwConfig, log: Any) -> Evaluation:
    from mww.data.sources import NOISE_SNRS_DB
    from mww.evaluate.run import evaluate_model

    if args.convert:
        raise UsageError("--convert applies to folder mode (--positives and --ambient) only")
    return evaluate_model(
        config,
        checkpoint=args.checkpoint,
        split=args.split,
        analyze=args.analyze,
        noise_snrs_db=NOISE_SNRS_DB if args.noise_snr is None else args.noise_snr,
        progress=not args.json and sys.stderr.isatty(),
        **_model_and_output(args, log),
    )


def _model_and_output(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """What both modes take alike: the exported model, the rule, where files go and the log."""
    return {
        "tflite": args.tflite,
        "manifest": args.manifest,
        "rule": args.rule,
        "output_dir": args.output_dir,
        "log": log,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of mww-evaluate."""
    return run_command("mww-evaluate", _parser(), _evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())

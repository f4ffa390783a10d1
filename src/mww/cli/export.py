"""mww-export: turn a training checkpoint into a streaming int8 TFLite model and its ESPHome manifest.

Writes <output>/<model-name>.tflite, <output>/<model-name>.json (v2 manifest) and <output>/streaming/
(the streaming SavedModel, for debugging). Exit status: 0 on success, 2 on bad input (the reason is
printed as one paragraph; nothing half-written is left behind).
"""

from __future__ import annotations

import argparse
import os

from mww.cli import run_command

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    from mww.config.load import add_config_arguments

    parser = argparse.ArgumentParser(prog="mww-export", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="the .weights.h5 checkpoint written by mww-train")
    add_config_arguments(parser)
    parser.add_argument(
        "--output", default=None, help="output folder (default: paths.export_dir of the config)"
    )
    parser.add_argument(
        "--model-name", default="wake_word", help="file name of the model, without extension (wake_word)"
    )
    parser.add_argument(
        "--calibration",
        default=None,
        metavar="JSON",
        help="calibration file with probability_cutoff and sliding_window_size (default: "
        "calibration.json next to the checkpoint if present, else the config's export values)",
    )
    parser.add_argument(
        "--no-quantize",
        action="store_true",
        help="write a float32 model for debugging; it will NOT run on the device",
    )
    return parser


def _export(args: argparse.Namespace) -> int:
    from mww.config.load import config_from_args
    from mww.export.convert import convert_model_saved

    config = config_from_args(args)
    output = args.output if args.output is not None else config.paths.export_dir
    convert_model_saved(
        args.checkpoint,
        output,
        args.model_name,
        config,
        quantize=config.export.quantize and not args.no_quantize,
        calibration_path=args.calibration,
        log=print,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of mww-export."""
    return run_command("mww-export", _parser(), _export, argv)


if __name__ == "__main__":
    raise SystemExit(main())

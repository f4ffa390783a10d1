"""mww-train: turn a dataset folder into the best checkpoint for the device."""

from __future__ import annotations

import argparse
import sys

from mww.cli import export_command, run_command
from mww.config.load import add_config_arguments, config_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mww-train", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in checkpoint_dir"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars during data preparation")
    return parser


def _train(args: argparse.Namespace) -> int:
    from mww.train.trainer import Trainer

    config = config_from_args(args)
    result = Trainer(config, progress=not args.quiet).train(resume=args.resume)
    if result.interrupted:
        return 130
    if result.best_checkpoint is None:
        print("mww-train: no evaluation ran, so no checkpoint was selected.", file=sys.stderr)
        return 1
    print(f"best checkpoint: {result.best_checkpoint} (step {result.best_step})")
    print(f"log: {result.log_path}")
    print(f"next: {export_command(result.best_checkpoint, args)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print where the best checkpoint is."""
    return run_command("mww-train", _parser(), _train, argv)


if __name__ == "__main__":
    raise SystemExit(main())

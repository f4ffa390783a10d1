"""mww-train: turn a dataset folder into the best checkpoint for the device."""

from __future__ import annotations

import argparse
import sys

from mww.cli import export_command
from mww.config import ConfigError, add_config_arguments, config_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mww-train", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in checkpoint_dir"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars during data preparation")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print where the best checkpoint is."""
    args = _parser().parse_args(argv)

    from mww.feature_store import FeatureStoreError
    from mww.ingest import IngestError
    from mww.model import ModelConfigError
    from mww.train import Trainer, TrainError
    from mww.train_data import TrainDataError

    try:
        config = config_from_args(args)
        result = Trainer(config, progress=not args.quiet).train(resume=args.resume)
    except (ConfigError, IngestError, TrainDataError, TrainError, ModelConfigError, FeatureStoreError) as exc:
        print(f"mww-train: error: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        return 130
    if result.best_checkpoint is None:
        print("mww-train: no evaluation ran, so no checkpoint was selected.", file=sys.stderr)
        return 1
    print(f"best checkpoint: {result.best_checkpoint} (step {result.best_step})")
    print(f"log: {result.log_path}")
    print(f"next: {export_command(result.best_checkpoint, args)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

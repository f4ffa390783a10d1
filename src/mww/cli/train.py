"""mww-train: turn a dataset folder into the best checkpoint for the device."""

from __future__ import annotations

import argparse
import sys

from mww.cli import UsageError, checked, export_command, run_command
from mww.config.load import add_config_arguments, config_from_args
from mww.config.schema import MwwConfig
from mww.train.fine_tune import DEFAULT_FINE_TUNE_LEARNING_RATE, one_phase


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mww-train", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in checkpoint_dir"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars during data preparation")
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from the weights of a trained .weights.h5 of the same architecture and input length "
        "(fine-tuning on new false wakes or voices) instead of random weights",
    )
    parser.add_argument(
        "--fine-tune-steps",
        metavar="N",
        type=checked(int, "a whole number", lambda v: v >= 1, "{text} steps: give at least 1"),
        help="with --init-from: one phase of N steps instead of the config's phases, with the last "
        "phase's class weights and SpecAugment masks",
    )
    parser.add_argument(
        "--fine-tune-learning-rate",
        metavar="LR",
        type=checked(
            float, "a number", lambda v: 0 < v < 1, "learning rate {text}: give one above 0 and below 1"
        ),
        help=f"the learning rate of --fine-tune-steps (default: {DEFAULT_FINE_TUNE_LEARNING_RATE})",
    )
    return parser


def _fine_tuned(args: argparse.Namespace, config: MwwConfig) -> MwwConfig:
    """The config with the one phase --fine-tune-steps asks for, or as it is."""
    if args.fine_tune_learning_rate is not None and args.fine_tune_steps is None:
        raise UsageError("--fine-tune-learning-rate sets the rate of --fine-tune-steps: give both")
    if args.fine_tune_steps is None:
        return config
    if args.init_from is None:
        raise UsageError(
            "--fine-tune-steps makes one short phase at a low learning rate, which only makes sense from a "
            "trained model: give the checkpoint to start from with --init-from"
        )
    rate = args.fine_tune_learning_rate or DEFAULT_FINE_TUNE_LEARNING_RATE
    return one_phase(config, args.fine_tune_steps, rate)


def _train(args: argparse.Namespace) -> int:
    from mww.train.trainer import Trainer

    config = _fine_tuned(args, config_from_args(args))
    result = Trainer(config, progress=not args.quiet, init_from=args.init_from).train(resume=args.resume)
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

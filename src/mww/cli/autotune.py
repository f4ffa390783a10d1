"""mww-autotune: fine-tune a trained checkpoint towards a target FA/h and recall.

Alternates short fine-tuning bursts with device-faithful evaluations on the validation split (mining
hard negatives and adjusting class weights, searching the probability cutoff and sliding window), then
confirms the best result on the held-out test split. Writes <output-dir>/tuned_weights.weights.h5 with
its sidecar, calibration.json (read by mww-export), iterations.csv and tuning_report.json.
Exit status: 0 when tuning ran (targets met or the best achievable trade-off reported), 2 on bad input
(the reason is printed as one paragraph), 130 when interrupted (the best result so far is kept).
"""

from __future__ import annotations

import argparse
import os
import sys

from mww.cli import export_command, run_command

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    from mww.config.load import add_config_arguments

    parser = argparse.ArgumentParser(prog="mww-autotune", description=__doc__)
    parser.add_argument(
        "--checkpoint", required=True, help="the .weights.h5 checkpoint to start from (written by mww-train)"
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--target-fah", type=float, default=0.3, help="most false activations per hour to reach (0.3)"
    )
    parser.add_argument(
        "--target-recall", type=float, default=0.92, help="least share of wake words detected to reach (0.92)"
    )
    parser.add_argument(
        "--max-iterations", type=int, default=100, help="most fine-tuning bursts before stopping (100)"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=10,
        help="stop after this many iterations without a better result (10)",
    )
    parser.add_argument(
        "--output-dir", default="./tuning", help="folder for the tuned checkpoint and the report (./tuning)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config, checkpoint, data and targets and print the plan; nothing is trained and "
        "nothing is written to --output-dir",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print data counts, burst losses and timings"
    )
    return parser


def _tune(args: argparse.Namespace) -> int:
    from mww.config.load import config_from_args
    from mww.tune.autotune import AutoTuner
    from mww.tune.decision import TuneTarget

    config = config_from_args(args)
    tuner = AutoTuner(
        config,
        TuneTarget(fah=args.target_fah, recall=args.target_recall),
        max_iterations=args.max_iterations,
        patience=args.patience,
        output_dir=args.output_dir,
        verbose=args.verbose,
        progress=args.verbose and sys.stderr.isatty(),
    )
    if args.dry_run:
        for line in tuner.dry_run(args.checkpoint):
            print(line)
        return 0
    result = tuner.tune(args.checkpoint)
    if result.interrupted:
        print(f"interrupted: the best result so far is in {result.checkpoint}")
        return 130
    print(f"next: {export_command(result.checkpoint, args)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of mww-autotune."""
    return run_command(
        "mww-autotune",
        _parser(),
        _tune,
        argv,
        interrupted=lambda _: "interrupted before the first evaluation finished; nothing was written.",
    )


if __name__ == "__main__":
    raise SystemExit(main())

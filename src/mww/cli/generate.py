"""mww-generate: synthesise a small demo dataset (espeak or Piper voices, noise, rooms) for trying the
pipeline.

Exit status: 0 when the dataset was written (or, with --reuse, is already there), 2 for bad input
(wake word, size, seed, a file that is not a Piper voice, an output folder that already holds a
dataset) or when speech synthesis is unavailable, 130 when interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mww.cli import Parser, UsageError, run_command
from mww.synth.dataset import generate_dataset
from mww.synth.layout import SUBFOLDERS
from mww.synth.request import SIZES

PROG = "mww-generate"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="./dataset", help="dataset folder (default: ./dataset)")
    parser.add_argument(
        "--wake-word", default="hey computer", help='the wake phrase (default: "hey computer")'
    )
    parser.add_argument("--size", default="small", help=f"{' or '.join(SIZES)} (default: small)")
    parser.add_argument("--seed", default="0", help="random seed, a whole number >= 0 (default: 0)")
    parser.add_argument("--force", action="store_true", help="replace a dataset already in the output folder")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a dataset this generator already made in the output folder for the same wake word, "
        "size and seed; replace one it made for another request or with an older version",
    )
    parser.add_argument(
        "--tts",
        action="append",
        metavar="ENGINES",
        help="espeak, piper, or espeak,piper for both (each then says about half of the clips); default: "
        "espeak, or piper when --piper-voice is given",
    )
    parser.add_argument(
        "--piper-voice",
        action="append",
        default=[],
        metavar="PATH.onnx",
        help="a Piper voice model, its PATH.onnx.json beside it; repeat for more voices (each speaker of a "
        "multi-speaker voice is one speaker of the dataset)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _generate(args: argparse.Namespace) -> int:
    try:
        seed = int(args.seed)
    except ValueError:
        raise UsageError(f"The seed must be a whole number of at least 0, got {args.seed!r}") from None
    summary = generate_dataset(
        Path(args.output),
        args.wake_word,
        args.size,
        seed,
        progress=not args.quiet,
        overwrite=args.force,
        reuse=args.reuse,
        tts=args.tts,
        piper_voices=args.piper_voice,
    )
    counts = summary.counts
    if summary.replaced:
        print(f"Replaced the dataset that was in {summary.output_dir}: {summary.replaced}.")
    made = "Reusing the" if summary.reused else "Generated a"
    print(f'{made} dataset for "{summary.wake_word}" in {summary.output_dir} ', end="")
    took = "this generator version, already there" if summary.reused else f"{summary.elapsed_s:.1f} s"
    print(f"(size {summary.size}, seed {summary.seed}, {took}):")
    for name in SUBFOLDERS:
        print(f"  {name + '/':<16}{counts[name]:>6} files")
    print(f"  {len(summary.speakers)} speakers; held out for testing: {', '.join(summary.held_out_speakers)}")
    print(f"  ambient audio: {summary.ambient_seconds / 60:.1f} minutes")
    print(f"  speech engines: {', '.join(summary.engines)}")
    override = summary.paths["override"]
    print(f"Next step, train with: mww-train --config fast_test --override {override}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, generate the dataset, print where it is and what to run next."""
    return run_command(
        PROG,
        _parser(),
        _generate,
        argv,
        interrupted=lambda args: (
            f"interrupted: {args.output} may hold a partial dataset (no generation.json). "
            "Run again with --force to replace it."
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())

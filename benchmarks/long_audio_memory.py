"""Peak memory and wall time of featurizing and evaluating hours of ambient audio.

Usage: python benchmarks/long_audio_memory.py [--hours 1 4 10] [--short-minutes 5] [--cases ...] [--work DIR]

For each number of hours, ambient audio is synthesized (quiet noise whose level drifts, with tone
bursts) twice: as one long recording, and as many recordings of `--short-minutes` each, beside a small
dataset of tone clips. Each case then runs in a fresh process, timed, with its peak resident memory
read from `getrusage` (the process itself and, separately, the largest of its worker processes):

  prepare   `mww.data.prepare.prepare_data`, what mww-prepare does: every file checked, then featurized
            into the feature store
  split     `mww.evaluate.run.evaluate_model`, what `mww-evaluate --tflite M --split validation` does
            (features already cached by `prepare`)
  folders   `mww.evaluate.folders.evaluate_folders`, what `mww-evaluate --tflite M --positives DIR
            --ambient DIR` does: the ambient recordings featurized and run as they are read

The model is the official `okay_nabu` model that pymicro-wakeword ships (stride 3, as the config).
The synthesized audio and the feature stores go under `--work` (a temporary folder by default, removed
at the end); 10 hours of audio take about 1.2 GB of WAV and 0.3 GB of features per layout.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mww.device.constants import SAMPLE_RATE_HZ

BLOCK_S = 60  # seconds of audio synthesized at a time
CASES = ("prepare", "split", "folders")


def official_model() -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models" / "okay_nabu.tflite"))


def ambient_block(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Quiet noise whose level drifts, with a few tone bursts: ambient audio the front end has to work on."""
    n = seconds * SAMPLE_RATE_HZ
    level = 0.01 * (1.0 + 0.8 * np.sin(np.linspace(0, rng.uniform(2, 8), n) + rng.uniform(0, 6)))
    x = level * rng.standard_normal(n)
    for _ in range(seconds // 10):
        start, length = int(rng.integers(0, n - SAMPLE_RATE_HZ)), int(rng.integers(1600, SAMPLE_RATE_HZ))
        t = np.arange(length) / SAMPLE_RATE_HZ
        x[start : start + length] += 0.1 * np.sin(2 * np.pi * rng.uniform(150, 3000) * t)
    return np.clip(x, -1, 1).astype(np.float32)


def write_recording(path: Path, seconds: int, seed: int) -> None:
    """A recording of `seconds`, written block by block (16 kHz mono 16-bit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with sf.SoundFile(str(path), "w", SAMPLE_RATE_HZ, 1, subtype="PCM_16") as out:
        for start in range(0, seconds, BLOCK_S):
            out.write(ambient_block(rng, min(BLOCK_S, seconds - start)))


def tone_clip(seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def make_dataset(root: Path, hours: float, short_minutes: float, layout: str) -> None:
    """Tone clips (10 speakers x 3 positives, 40 negatives) and the ambient audio of one case."""
    for s in range(10):
        for i in range(3):
            sf.write(
                str(_mk(root / "positive" / f"spk{s:02d}" / f"{i}.wav")),
                tone_clip(1.0, 300 + 20 * s + i, s),
                16000,
            )
    for i in range(40):
        sf.write(str(_mk(root / "negative" / f"n{i}.wav")), tone_clip(1.2, 900 + i, 1000 + i), 16000)
    total = round(hours * 3600)
    if layout == "long":
        write_recording(root / "ambient" / "long.wav", total, seed=1)
    else:
        each = round(short_minutes * 60)
        for i, start in enumerate(range(0, total, each)):
            write_recording(root / "ambient" / f"short_{i:04d}.wav", min(each, total - start), seed=100 + i)


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def config_for(root: Path):  # the MwwConfig of one case's dataset
    from mww.config.load import config_from_dict

    folders = {"positive_dir": "positive", "negative_dir": "negative", "hard_negative_dir": "hard_negative"}
    folders |= {"background_dir": "background", "rir_dir": "rirs", "ambient_dir": "ambient"}
    paths = {key: str(root / name) for key, name in folders.items()}
    paths |= {"processed_dir": str(root / "processed"), "checkpoint_dir": str(root / "checkpoints")}
    # recordings of up to 12 hours are ambient audio here, not too long
    return config_from_dict({"paths": paths, "data": {"max_negative_duration_s": 12 * 3600.0}})


def run_case(case: str, root: Path) -> dict[str, float]:
    """One case in this process: what it measured."""
    config = config_for(root)
    start = time.perf_counter()
    if case == "prepare":
        from mww.data.prepare import prepare_data

        prepared = prepare_data(config)
        hours = sum(c.duration_s for c in prepared.ingest.of("ambient")) / 3600
        fah = float("nan")
    elif case == "split":
        from mww.evaluate.run import evaluate_model

        result = evaluate_model(config, tflite=official_model(), split="validation", noise_snrs_db=())
        hours, fah = result.counts["ambient_hours"], result.at_settings["fah"]
    else:
        from mww.evaluate.folders import evaluate_folders

        result = evaluate_folders(
            config,
            tflite=official_model(),
            manifest=None,
            positives=root / "positive",
            ambient=root / "ambient",
        )
        hours, fah = result.counts["ambient_hours"], result.at_settings["fah"]
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "peak_mib": own, "worker_peak_mib": workers, "ambient_hours": hours, "fah": fah}


def in_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 4.0, 10.0])
    parser.add_argument("--short-minutes", type=float, default=5.0)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="the cases to run")
    parser.add_argument("--work", type=Path, default=None, help="keep the audio and stores here")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=4, metavar=("ROOT", "H", "MIN", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child[0], Path(args.child[1]))))
        return
    if args.make:
        make_dataset(Path(args.make[0]), float(args.make[1]), float(args.make[2]), args.make[3])
        print("{}")
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="mww-long-audio-"))
    print(f"{os.cpu_count()} CPU cores; short files of {args.short_minutes:g} min")
    header = ("layout", "hours", "case", "scored h", "wall s", "peak MiB", "workers MiB", "FA/h")
    print("  ".join(f"{h:>11}" for h in header))
    peaks: dict[tuple[str, str], dict[float, float]] = {}
    try:
        for hours in args.hours:
            for layout in ("long", "short"):
                root = work / f"{layout}_{hours:g}h"
                if not (root / "ambient").is_dir():
                    in_child("--make", str(root), str(hours), str(args.short_minutes), layout)
                for case in args.cases:
                    r = in_child("--child", case, str(root))
                    peaks.setdefault((layout, case), {})[hours] = max(r["peak_mib"], r["worker_peak_mib"])
                    row = (layout, f"{hours:g}", case, f"{r['ambient_hours']:.2f}", f"{r['wall_s']:.1f}")
                    row += (f"{r['peak_mib']:.0f}", f"{r['worker_peak_mib']:.0f}", f"{r['fah']:.2f}")
                    print("  ".join(f"{v:>11}" for v in row), flush=True)
                if args.work is None:
                    shutil.rmtree(root)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    low, high = min(args.hours), max(args.hours)
    for (layout, case), by_hours in peaks.items():
        if low in by_hours and high in by_hours and low != high:
            ratio = by_hours[high] / by_hours[low]
            print(f"{layout} {case}: peak at {high:g} h / peak at {low:g} h = {ratio:.2f}")


if __name__ == "__main__":
    main()

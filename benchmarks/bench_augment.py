"""Offline augmentation throughput, and SpecAugment time per batch.

Usage: python benchmarks/bench_augment.py [--clips 300] [--seconds 1.5] [--workers N] [--variants 4]
                                         [--long-negative SECONDS]
Synthetic clips, background noises and room impulse responses are generated in a temp folder;
the standard preset's probabilities, SNR range, jitter and 3.2 s window are used. Reports:
  * per variant, in one process: placement + augmentation, and featurization, separately;
  * the cached stage `augment_clips` (decode + place + augment + featurize + store), cold with
    1 worker and with all workers, then warm (everything cached);
  * SpecAugment (NumPy) per batch of 128 x 204 x 40 at the max_quality masks and at larger ones;
  * with --long-negative: one negative recording that long, cut into window-sized pieces (one
    variant per piece), augmented and featurized in one worker.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from mww.config.load import config_from_dict, load_preset
from mww.data.augment import augment_clips, augmentation_files, open_augmented_store
from mww.data.ingest import Clip
from mww.data.placement import place_clip
from mww.data.specaugment import phase_mask_settings, spec_augment_numpy
from mww.data.transforms import build_augmenter
from mww.device.audio import load_audio, write_wav
from mww.device.constants import MEL_BINS, SAMPLE_RATE_HZ
from mww.device.features import audio_to_uint16_features


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (workers), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_dataset(root: Path, clips: int, seconds: float) -> list[Clip]:
    """Clips (a third of them negatives), 4 background noises of 10 s and 4 decaying RIRs."""
    rng = np.random.default_rng(0)
    n = round(seconds * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    out = []
    for i in range(clips):
        kind = "negative" if i % 3 == 2 else "positive"
        envelope = np.sin(np.pi * t / seconds) ** 2
        x = envelope * 0.3 * np.sin(
            2 * np.pi * (200 + 3 * i) * t * (1 + 0.2 * t)
        ) + 0.01 * rng.standard_normal(n)
        path = write_wav(root / kind / f"spk{i % 10}" / f"{i}.wav", x.astype(np.float32))
        out.append(Clip(path, kind, f"spk{i % 10}", seconds))
    for i in range(4):
        noise = (
            np.cumsum(rng.standard_normal(10 * SAMPLE_RATE_HZ))
            if i % 2
            else rng.standard_normal(10 * SAMPLE_RATE_HZ)
        )
        noise = 0.2 * noise / np.abs(noise).max()
        write_wav(root / "background" / f"noise{i}.wav", noise.astype(np.float32))
        m = round((0.2 + 0.1 * i) * SAMPLE_RATE_HZ)
        rir = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.05 * (i + 1) * SAMPLE_RATE_HZ))
        rir[0] = 1.0
        write_wav(root / "rirs" / f"rir{i}.wav", (0.9 * rir / np.abs(rir).max()).astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--long-negative", type=float, default=0.0, help="seconds; 0 = skip")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = make_dataset(root, args.clips, args.seconds)
        cfg = config_from_dict(
            {
                "paths": {
                    "positive_dir": str(root / "positive"),
                    "negative_dir": str(root / "negative"),
                    "background_dir": str(root / "background"),
                    "rir_dir": str(root / "rirs"),
                    "processed_dir": str(root / "processed"),
                },
                "augmentation": {"variants_per_clip": args.variants},
            }
        )
        aug = cfg.augmentation
        background, rirs = augmentation_files(cfg)

        # In one process, per variant: place + augment, then featurize.
        augmenter = build_augmenter(aug, background, rirs)
        audio = [load_audio(c.path) for c in clips[:100]]
        rng = np.random.default_rng(0)
        augmenter(place_clip(audio[0], aug.augmentation_duration_s, 0.2, 0.2, rng, "positive")[0])  # warm
        start = time.perf_counter()
        placed = [
            augmenter(
                place_clip(
                    x, aug.augmentation_duration_s, aug.min_jitter_s, aug.max_jitter_s, rng, "positive"
                )[0]
            )
            for x in audio
        ]
        augment_ms = (time.perf_counter() - start) / len(audio) * 1e3
        start = time.perf_counter()
        for x in placed:
            audio_to_uint16_features(x)
        featurize_ms = (time.perf_counter() - start) / len(placed) * 1e3

        total = args.clips * args.variants
        timings, cpu_used = {}, {}
        for workers in sorted({1, args.workers}):
            store = open_augmented_store(root / f"processed{workers}", aug, background, rirs)
            start, cpu = time.perf_counter(), cpu_seconds()
            result = augment_clips(clips, cfg, store, num_workers=workers)
            timings[workers] = time.perf_counter() - start
            cpu_used[workers] = cpu_seconds() - cpu
            assert result.computed == total, result.failed
        start = time.perf_counter()
        warm = augment_clips(
            clips, cfg, open_augmented_store(root / f"processed{args.workers}", aug, background, rirs)
        )
        warm_s = time.perf_counter() - start
        assert warm.computed == 0
        long_timing = long_negative(root, cfg, background, rirs, args) if args.long_negative > 0 else None

    batch = np.random.default_rng(1).random((128, 204, MEL_BINS), dtype=np.float32)
    spec_rng = np.random.default_rng(2)
    spec = {}
    for label, settings in (
        ("max_quality masks (t 2x<=5, f 2x<=3)", phase_mask_settings(load_preset("max_quality").training, 0)),
        (
            "larger masks (t 4x<=20, f 4x<=10)",
            {"time_mask_max_size": 20, "time_mask_count": 4, "freq_mask_max_size": 10, "freq_mask_count": 4},
        ),
    ):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(100):
                spec_augment_numpy(batch, rng=spec_rng, **settings)
            runs.append((time.perf_counter() - start) / 100)
        spec[label] = min(runs)

    print(
        f"{args.clips} clips x {args.seconds:.1f} s, {args.variants} variants each ({total} variants), "
        f"window {aug.augmentation_duration_s} s, standard probabilities, {os.cpu_count()} CPU cores"
    )
    print(f"one process, per variant: place+augment {augment_ms:.2f} ms, featurize {featurize_ms:.2f} ms")
    for workers, seconds in timings.items():
        print(
            f"augment_clips cold, {workers} worker(s): {total / seconds:7.1f} variants/s "
            f"= {args.clips / seconds:6.1f} source clips/s ({seconds:.2f} s wall, "
            f"{cpu_used[workers]:.2f} s CPU in all processes)"
        )
    print(f"augment_clips warm (all cached): {total / warm_s:9.1f} variants/s ({warm_s:.2f} s)")
    if len(timings) > 1:
        print(f"parallel speed-up: {timings[1] / timings[args.workers]:.2f}x with {args.workers} workers")
        print(f"load average during the run: {os.getloadavg()[0]:.2f} (others' work skews wall times)")
    for label, seconds in spec.items():
        print(f"SpecAugment NumPy, batch 128x204x40, {label}: {seconds * 1e3:.3f} ms/batch")
    if long_timing:
        pieces, seconds = long_timing
        print(
            f"long negative of {args.long_negative:.0f} s cut into {pieces} pieces, one worker: "
            f"{pieces / seconds:.1f} pieces/s = {args.long_negative / seconds:.0f} s of audio per second "
            f"({seconds:.2f} s wall)"
        )


def long_negative(root: Path, cfg, background: list[Path], rirs: list[Path], args) -> tuple[int, float]:
    """(pieces, wall seconds) of augmenting one long negative recording, every piece once."""
    rng = np.random.default_rng(3)
    n = round(args.long_negative * SAMPLE_RATE_HZ)
    x = 0.1 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * 0.5 * np.arange(n) / SAMPLE_RATE_HZ))
    path = write_wav(root / "negative" / "long" / "radio.wav", x.astype(np.float32))
    clip = Clip(path, "negative", None, n / SAMPLE_RATE_HZ)
    store = open_augmented_store(root / "long", cfg.augmentation, background, rirs)
    start = time.perf_counter()
    result = augment_clips([clip], cfg, store, num_workers=1)
    return result.computed, time.perf_counter() - start


if __name__ == "__main__":
    main()

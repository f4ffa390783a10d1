"""Feature extraction throughput: hours of audio featurized per second of wall time.

Usage: python benchmarks/bench_features.py [--clips 400] [--seconds 2.0] [--workers N]
Reports the in-process front end alone, and the cached parallel pipeline (decode + front end
+ store) cold and warm, as ratios measured in one run on this machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mww.data.featurize import featurize_files, open_feature_store
from mww.device.audio import write_wav
from mww.device.constants import SAMPLE_RATE_HZ
from mww.device.features import audio_to_uint16_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = int(args.seconds * SAMPLE_RATE_HZ)
    audio_hours = args.clips * args.seconds / 3600
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = []
        for i in range(args.clips):
            x = (0.2 * np.sin(np.arange(n) * (0.01 + i * 1e-4)) + 0.05 * rng.standard_normal(n)).astype(
                np.float32
            )
            paths.append(write_wav(root / "audio" / f"{i}.wav", x))
        clip = (0.1 * rng.standard_normal(n)).astype(np.float32)

        start = time.perf_counter()
        for _ in range(args.clips):
            audio_to_uint16_features(clip)
        frontend_s = time.perf_counter() - start

        timings = {}
        for workers in sorted({1, args.workers}):
            store = open_feature_store(root / f"store{workers}")
            start = time.perf_counter()
            featurize_files(paths, store, num_workers=workers)
            timings[workers] = time.perf_counter() - start
        start = time.perf_counter()
        warm = featurize_files(
            paths, open_feature_store(root / f"store{args.workers}"), num_workers=args.workers
        )
        warm_s = time.perf_counter() - start
        assert warm.computed == 0

    print(
        f"audio: {args.clips} clips x {args.seconds:.1f} s = {audio_hours:.3f} h, {os.cpu_count()} CPU cores"
    )
    print(f"front end only, 1 process:  {audio_hours / frontend_s:8.3f} h audio/s ({frontend_s:.2f} s)")
    for workers, seconds in timings.items():
        print(f"pipeline cold, {workers} worker(s): {audio_hours / seconds:8.3f} h audio/s ({seconds:.2f} s)")
    print(f"pipeline warm (cache hit):  {audio_hours / warm_s:8.3f} h audio/s ({warm_s:.2f} s)")
    if len(timings) > 1:
        print(f"parallel speed-up: {timings[1] / timings[args.workers]:.2f}x with {args.workers} workers")


if __name__ == "__main__":
    main()

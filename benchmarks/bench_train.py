"""Training throughput: the real data path against the compute bound, in one run.

Usage: python benchmarks/bench_train.py [--steps 200] [--batch 128] [--preset standard]

1. compute bound: the compiled train step fed one constant in-memory batch;
2. trainer path: windows sampled from an on-disk store on the background thread, SpecAugment on
   (two time and two frequency masks), class weights, the same compiled step;
3. offline augmentation + featurization of clips (clips/s), for the standard probabilities.
Prints steps/s, samples/s and the ratio 2/1 (the trainer should keep >= 80 % of the bound).
Both use mww.train.trainer.compile_train_step, with the weights' moving average when the preset sets
training.ema_decay.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mww.config.load import load_preset
from mww.data.augment import augment_clips, open_augmented_store
from mww.data.feature_store import FeatureStore
from mww.data.ingest import Clip
from mww.data.sampler import Prefetcher, Source, WindowSampler, step_rng
from mww.data.specaugment import spec_augment_numpy
from mww.device.audio import write_wav
from mww.device.constants import MEL_BINS, SAMPLE_RATE_HZ
from mww.model.builder import build_model
from mww.model.plan import training_input_frames
from mww.train.trainer import compile_train_step
from mww.train.weight_average import weight_average_for


def make_step(model, batch, frames, ema_decay):
    """The trainer's own compiled step (with the weights' moving average when the preset has one)."""
    import keras

    average = weight_average_for(model.trainable_variables, ema_decay)
    train_step = compile_train_step(model, keras.optimizers.Adam(1e-3), batch, frames, average)
    return lambda x, y, w: train_step(x, y, w)[0]


def timed(fn, steps):
    fn(0)  # trace and warm up
    fn(1)
    start = time.perf_counter()
    for i in range(steps):
        fn(i + 2)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--clips", type=int, default=200, help="clips for the augmentation timing")
    args = parser.parse_args()
    cfg = load_preset(args.preset)
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    step = make_step(model, args.batch, frames, cfg.training.ema_decay)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (args.batch, frames, MEL_BINS)).astype(np.float32)
    y = (rng.random(args.batch) < 0.5).astype(np.float32)
    w = np.ones(args.batch, np.float32)
    bound = timed(lambda i: step(x, y, w).numpy(), args.steps)

    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(Path(tmp) / "store", MEL_BINS)
        store.put_many({f"v{i}": rng.integers(0, 700, (318, MEL_BINS), dtype=np.uint16) for i in range(2000)})
        keys = store.keys()
        sources = [
            Source("positive", 1, 1.0, "end", store, keys[:500], end_jitter=15),
            Source("negative", 0, 1.0, "random", store, keys[500:1800]),
            Source("hard_negative", 0, 0.5, "end", store, keys[1800:], end_jitter=15),
        ]
        sampler = WindowSampler(sources, frames, args.batch)
        class_weight = np.array([1.0, 20.0, 40.0], np.float32)

        def make_batch(i):
            batch = sampler.sample(step_rng(0, i))
            masked = spec_augment_numpy(batch.features, 5, 2, 3, 2, step_rng(0, i, 1))
            return masked, batch.labels, class_weight[batch.source]

        prefetch = Prefetcher(make_batch, 0, args.steps + 2)

        def real_step(_i):
            bx, by, bw = prefetch.get()
            step(bx, by, bw).numpy()

        real = timed(real_step, args.steps)
        prefetch.close()
        start = time.perf_counter()
        for i in range(50):
            make_batch(i)
        sample_ms = (time.perf_counter() - start) / 50 * 1000

        clip_dir = Path(tmp) / "clips"
        clips = []
        for i in range(args.clips):
            audio = (0.1 * rng.standard_normal(int(1.5 * SAMPLE_RATE_HZ))).astype(np.float32)
            path = write_wav(clip_dir / f"{i}.wav", audio)
            clips.append(Clip(path, "positive" if i % 2 else "negative", None, 1.5, "train"))
        backgrounds = [
            write_wav(
                Path(tmp) / "bg" / f"{i}.wav",
                (0.05 * rng.standard_normal(SAMPLE_RATE_HZ * 5)).astype(np.float32),
            )
            for i in range(4)
        ]
        rirs = [
            write_wav(Path(tmp) / "rir" / f"{i}.wav", np.exp(-np.arange(4000) / 600.0).astype(np.float32))
            for i in range(4)
        ]
        aug_rates = {}
        for workers in sorted({1, os.cpu_count() or 1}):
            aug_store = open_augmented_store(Path(tmp) / f"aug{workers}", cfg.augmentation, backgrounds, rirs)
            start = time.perf_counter()
            result = augment_clips(
                clips,
                cfg,
                aug_store,
                workers,
                background_files=backgrounds,
                rir_files=rirs,
                min_variants_per_worker=1,
            )
            aug_rates[workers] = result.computed / (time.perf_counter() - start)
    out = io.StringIO()
    print(
        f"preset {args.preset}: input {frames} frames, batch {args.batch}, {os.cpu_count()} CPU cores",
        file=out,
    )
    print(
        f"compute bound (constant batch): {bound:7.2f} steps/s  {bound * args.batch:8.0f} samples/s", file=out
    )
    print(
        f"trainer data path + SpecAugment: {real:6.2f} steps/s  {real * args.batch:8.0f} samples/s", file=out
    )
    print(
        f"ratio: {real / bound:.2f} (target >= 0.80); sampling + SpecAugment alone: {sample_ms:.1f} ms/batch",
        file=out,
    )
    for workers, rate in aug_rates.items():
        print(f"offline augmentation + features, {workers} worker(s): {rate:.0f} variants/s", file=out)
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()

"""Scoring a long recording with a Keras model: one pass over the sequence vs every window.

Usage: python benchmarks/bench_scoring.py [--config standard] [--minutes 10]
Training evaluation, mining and `mww-evaluate --checkpoint` score every streaming invocation of
the validation/test recordings. `mww.model.streaming.sequence_scorer` runs each layer once over the whole
recording; `mww.model.scoring.window_scorer` runs the full model on every invocation's window (what the
device's output is defined as). Both run here on the same random features with a fresh model of
the config; the report gives invocations per second, the ratio and the largest difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mww.config.load import load_full_config
from mww.device.constants import FEATURE_MAX_FLOAT, MEL_BINS, WINDOW_STEP_MS
from mww.model.builder import build_model
from mww.model.plan import training_input_frames
from mww.model.scoring import window_scorer
from mww.model.streaming import sequence_scorer
from mww.train.trainer import compile_predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="standard")
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    cfg = load_full_config(args.config)
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    n = int(args.minutes * 60_000 / WINDOW_STEP_MS)
    features = np.random.default_rng(0).uniform(0, FEATURE_MAX_FLOAT, (n, MEL_BINS)).astype(np.float32)

    timings, outputs = {}, {}
    scorers = {
        "windows": window_scorer(compile_predict(model, frames), frames, cfg.model.stride),
        "sequence": sequence_scorer(model, cfg.model),
    }
    for name, score in scorers.items():
        score([features[: frames + 64 * cfg.model.stride]])  # warm-up: tracing, thread pools
        start = time.perf_counter()
        outputs[name] = score([features])[0]
        timings[name] = time.perf_counter() - start
    invocations = outputs["windows"].size
    print(
        f"{args.config} model, {args.minutes:g} min of features, {invocations} invocations "
        f"(input {frames} frames, stride {cfg.model.stride})"
    )
    for name, seconds in timings.items():
        print(f"  {name:<9} {seconds:7.2f} s  {invocations / seconds:10.0f} invocations/s")
    print(
        f"  sequence / windows speed ratio: {timings['windows'] / timings['sequence']:.1f}x; max |diff| "
        f"{float(np.abs(outputs['windows'] - outputs['sequence']).max()):.2e}"
    )


if __name__ == "__main__":
    main()

"""Featurize audio files in parallel into the on-disk store, keyed by file content.

The key of a file is the hash of its bytes; the store folder is named by the front-end
fingerprint. A changed file gets a new key and is recomputed; an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mww.data.feature_store import FeatureStore
from mww.device.audio import AudioError, load_audio
from mww.device.constants import MEL_BINS
from mww.device.features import audio_to_uint16_features, frontend_fingerprint

FLUSH_EVERY = 256  # arrays buffered before an append + index write
MIN_CLIPS_PER_WORKER = 200  # below this, starting a process costs more than it saves (benchmarks/)


def file_key(path: str | os.PathLike[str]) -> str:
    """Content hash of a file: the cache key of its features."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def open_feature_store(processed_dir: str | os.PathLike[str]) -> FeatureStore:
    """The store for the current front-end settings under `processed_dir`."""
    return FeatureStore(Path(processed_dir) / "features" / frontend_fingerprint(), width=MEL_BINS)


@dataclass
class FeaturizeResult:
    """Which key holds each file's features, and what had to be computed."""

    keys: dict[Path, str] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    failed: dict[Path, str] = field(default_factory=dict)


_Output = tuple[Path, str, np.ndarray | None, str]


def _featurize(task: tuple[Path, str]) -> _Output:
    path, key = task
    try:
        return path, key, audio_to_uint16_features(load_audio(path)), ""
    except AudioError as exc:
        return path, key, None, exc.detail


def featurize_files(
    paths: Sequence[Path],
    store: FeatureStore,
    num_workers: int = 1,
    progress: bool = False,
    min_clips_per_worker: int = MIN_CLIPS_PER_WORKER,
) -> FeaturizeResult:
    """Make sure every file's features are in `store`; returns the file → key mapping."""
    result = FeaturizeResult()
    todo: list[tuple[Path, str]] = []
    pending_keys: set[str] = set()
    for path in paths:
        key = file_key(path)
        result.keys[path] = key
        if key in store or key in pending_keys:
            result.reused += 1
        else:
            pending_keys.add(key)
            todo.append((path, key))
    if not todo:
        return result
    buffer: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(todo), desc="features", unit="clip", disable=not progress)
    workers = max(1, min(num_workers, len(todo) // min_clips_per_worker + 1))
    try:
        if workers == 1:
            outputs = map(_featurize, todo)
            _collect(outputs, store, buffer, result, bar)
        else:
            with get_context("spawn").Pool(workers) as pool:
                outputs = pool.imap_unordered(_featurize, todo, chunksize=8)
                _collect(outputs, store, buffer, result, bar)
    finally:
        store.put_many(buffer)
        bar.close()
    for path in result.failed:
        result.keys.pop(path, None)
    return result


def _collect(
    outputs: Iterable[_Output],
    store: FeatureStore,
    buffer: dict[str, np.ndarray],
    result: FeaturizeResult,
    bar: tqdm,
) -> None:
    for path, key, features, error in outputs:
        bar.update(1)
        if features is None:
            result.failed[path] = error
            continue
        buffer[key] = features
        result.computed += 1
        if len(buffer) >= FLUSH_EVERY:
            store.put_many(buffer)
            buffer.clear()

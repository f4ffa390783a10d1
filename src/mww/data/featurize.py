"""Featurize audio files in parallel into the on-disk store, keyed by file content.

The key of a file is the hash of its bytes; the store folder is named by the front-end
fingerprint. A changed file gets a new key and is recomputed; an unchanged one is reused.

A recording longer than `LONG_FILE_S` (an hour of TV, a night in the kitchen) is featurized block by
block straight into the store (`mww.device.audio.audio_blocks`, one front end fed block after block), so
its audio and its features are never whole in memory; the features are the same as in one piece.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mww.data.feature_store import FeatureStore
from mww.device.audio import AudioError, audio_blocks, audio_info, to_pcm16
from mww.device.constants import MEL_BINS
from mww.device.features import StreamingFrontend, frontend_fingerprint

FLUSH_EVERY = 256  # arrays buffered before an append + index write
FLUSH_ROWS = 1 << 18  # ... or this many feature rows (20 MiB, about 44 min of audio), whichever first
LONG_FILE_S = 600.0  # longer recordings are featurized block by block into the store, one at a time
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


def feature_blocks(path: Path) -> Iterator[np.ndarray]:
    """uint16 front-end features of an audio file, block by block; together exactly
    `audio_to_uint16_features(load_audio(path))`. Raises AudioError for a file that cannot be decoded."""
    frontend = StreamingFrontend()
    for block in audio_blocks(path):
        yield frontend.feed(to_pcm16(block))


def _featurize(task: tuple[Path, str]) -> _Output:
    path, key = task
    try:
        return path, key, np.concatenate(list(feature_blocks(path))), ""
    except AudioError as exc:
        return path, key, None, exc.detail


def _is_long(path: Path) -> bool:
    try:
        return audio_info(path)[1] > LONG_FILE_S
    except AudioError:
        return False  # featurizing it reports why it cannot be read


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
    long = [task for task in todo if _is_long(task[0])]
    short = [task for task in todo if task not in long]
    buffer: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(todo), desc="features", unit="clip", disable=not progress)
    workers = max(1, min(num_workers, len(short) // min_clips_per_worker + 1))
    try:
        if workers == 1:
            _collect(map(_featurize, short), store, buffer, result, bar)
        else:
            with get_context("spawn").Pool(workers) as pool:
                _collect(pool.imap_unordered(_featurize, short, chunksize=8), store, buffer, result, bar)
        store.put_many(buffer)
        buffer.clear()
        for path, key in long:
            _featurize_long(path, key, store, result)
            bar.update(1)
    finally:
        store.put_many(buffer)
        bar.close()
    for path in result.failed:
        result.keys.pop(path, None)
    return result


def _featurize_long(path: Path, key: str, store: FeatureStore, result: FeaturizeResult) -> None:
    """One long recording, featurized block by block into the store (committed only when whole)."""
    try:
        store.put_blocks(key, feature_blocks(path))
    except AudioError as exc:
        result.failed[path] = exc.detail
        return
    result.computed += 1


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
        if len(buffer) >= FLUSH_EVERY or sum(a.shape[0] for a in buffer.values()) >= FLUSH_ROWS:
            store.put_many(buffer)
            buffer.clear()

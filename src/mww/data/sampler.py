"""Training batches: windows sampled from the feature stores, mixed by source weights.

Every example is a window of `input_frames` rows cut from one stored array:
  "end"     the last rows, or up to `end_jitter` rows earlier (positives, hard negatives: the
            wake word ends where the device decides)
  "random"  a uniformly random window (negatives)
  "fixed"   a given start row (mined hard negatives, replayed where they fired)
Arrays shorter than the window are left-padded with their own first frame.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mww.data.feature_store import FeatureStore
from mww.device.features import uint16_to_float

TRUNCATIONS = ("end", "random", "fixed")


class RowStore(Protocol):
    """Where a source's arrays are: a `FeatureStore`, or a precomputed set (`mww.data.feature_sets`)."""

    width: int

    def location(self, key: str) -> tuple[int, int]:
        """(first row, row count) of one array."""
        ...

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows by absolute row number."""
        ...


@dataclass
class Source:
    """One kind of training example and where its arrays are.

    Its class weight is `class_weight` when given, else the weight of the kind `weight_kind` (by
    default its `name`) in the phase being trained (`mww.train.trainer.class_weights`)."""

    name: str
    label: int
    sampling_weight: float
    truncation: str
    store: FeatureStore | RowStore
    keys: list[str]
    starts: list[int] = field(default_factory=list)  # "fixed" only: window start per key
    end_jitter: int = 0  # "end" only: the window ends up to this many frames before the array end
    class_weight: float | None = None
    weight_kind: str = ""

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {self.truncation!r}")
        if self.truncation == "fixed" and len(self.starts) != len(self.keys):
            raise ValueError(f"source {self.name}: 'fixed' needs one start per key")


@dataclass
class Batch:
    """Float features [B, T, 40], labels [B] and the source index of every example."""

    features: np.ndarray
    labels: np.ndarray
    source: np.ndarray


class WindowSampler:
    """Draws batches: a source by weight, an array uniformly within it, a window by truncation."""

    def __init__(self, sources: Sequence[Source], input_frames: int, batch_size: int) -> None:
        self.sources = [s for s in sources if s.keys and s.sampling_weight > 0]
        if not self.sources:
            raise ValueError("no training source has examples and a positive sampling weight")
        self.input_frames = input_frames
        self.batch_size = batch_size
        weights = np.array([s.sampling_weight for s in self.sources], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self._rows = []
        for source in self.sources:
            located = np.array([source.store.location(k) for k in source.keys], dtype=np.int64).reshape(-1, 2)
            rows, lengths = located[:, 0], located[:, 1]
            starts = np.array(source.starts, dtype=np.int64) if source.truncation == "fixed" else None
            self._rows.append((rows, lengths, starts))

    def window_starts(self, source_index: int, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Start of the window within each chosen array (may be negative: padded on the left)."""
        source = self.sources[source_index]
        _, lengths, fixed = self._rows[source_index]
        length = lengths[items]
        if source.truncation == "end":
            back = rng.integers(0, source.end_jitter + 1, size=items.size) if source.end_jitter else 0
            return length - self.input_frames - back
        if source.truncation == "fixed":
            return fixed[items]
        room = np.maximum(length - self.input_frames, 0)
        return (rng.random(items.size) * (room + 1)).astype(np.int64) - np.maximum(
            self.input_frames - length, 0
        )

    def sample(self, rng: np.random.Generator) -> Batch:
        """One batch of uint16 windows converted to the float training scale."""
        which = rng.choice(len(self.sources), size=self.batch_size, p=self.probabilities)
        out = np.empty((self.batch_size, self.input_frames, self.sources[0].store.width), dtype=np.uint16)
        labels = np.empty(self.batch_size, dtype=np.float32)
        offsets = np.arange(self.input_frames, dtype=np.int64)
        for index in np.unique(which):
            slots = np.flatnonzero(which == index)
            source = self.sources[index]
            rows, lengths, _ = self._rows[index]
            items = rng.integers(0, len(source.keys), size=slots.size)
            starts = self.window_starts(index, items, rng)
            # Positions inside each array, clamped at 0 (left padding repeats the first frame).
            within = np.clip(starts[:, None] + offsets[None, :], 0, (lengths[items] - 1)[:, None])
            out[slots] = source.store.rows(rows[items][:, None] + within)
            labels[slots] = source.label
        return Batch(uint16_to_float(out), labels, which.astype(np.int32))


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one training step: data order is a pure function of (seed, step)."""
    return np.random.default_rng([seed, stream, step])


class Prefetcher:
    """Produces the batches of steps [first, last) in order on a background thread.

    NumPy releases the GIL for the heavy copies, so sampling overlaps the training step.
    """

    def __init__(self, make_batch: Callable[[int], Batch], first: int, last: int, depth: int = 4) -> None:
        self._make = make_batch
        self._steps = range(first, last)
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for step in self._steps:
                if self._stop.is_set():
                    return
                batch = self._make(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surfaced to the consumer on its next get()
            self._queue.put(exc)

    def get(self) -> Batch:
        """The next batch (re-raises an error from the producer thread)."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the producer thread."""
        self._stop.set()
        self._thread.join(timeout=5)

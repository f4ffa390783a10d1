"""An on-disk store of ragged uint16 feature arrays, memory-mapped for reading.

Layout of one store folder:
  frames.u16   every array's rows, appended one after another (uint16, row width fixed)
  index.json   {"width": W, "rows": committed row count, "items": {key: [first_row, n_rows]}}

Writers append rows, flush, then replace index.json atomically; rows past the committed count
(left by a crash between the two steps) are cut off on the next open. One writer at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mww.atomic import DISK_FULL_ERRNOS, NOT_WRITABLE_ERRNOS, atomic_write_json
from mww.device.features import uint16_to_float
from mww.errors import MwwError

_DATA = "frames.u16"
_INDEX = "index.json"


class FeatureStoreError(MwwError):
    """The store's files do not agree with each other or with the caller."""


class FloatFeatures:
    """The float training-scale features (`mww.device.features.uint16_to_float`) of one stored array,
    read from the store's file and converted only where sliced: an evaluation stream of a long
    recording that is never whole in memory, neither as float32 nor as mapped pages. Slices and
    `np.asarray` give what converting the whole array would."""

    def __init__(self, data_path: Path, first_row: int, n_rows: int, width: int) -> None:
        self.data_path, self.first_row, self.n_rows, self.width = data_path, first_row, n_rows, width

    @property
    def shape(self) -> tuple[int, int]:
        """(frames, width), as the converted array would have."""
        return (self.n_rows, self.width)

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("stored features are read by slices of rows")
        start, stop, step = index.indices(self.n_rows)
        count = max(0, stop - start)
        with open(self.data_path, "rb") as handle:
            handle.seek((self.first_row + start) * self.width * 2)
            rows = np.fromfile(handle, dtype=np.uint16, count=count * self.width)
        return uint16_to_float(rows.reshape(count, self.width)[::step])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


class FeatureStore:
    """Ragged uint16 arrays of shape (n, width), keyed by string."""

    def __init__(self, root: str | Path, width: int) -> None:
        self.root = Path(root)
        self.width = width
        self.root.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, tuple[int, int]] = {}
        self._rows = 0
        self._map: np.memmap | None = None
        index_path = self.root / _INDEX
        if index_path.exists():
            index = json.loads(index_path.read_text())
            if index.get("width") != width:
                raise FeatureStoreError(
                    f"The feature store in {self.root} holds rows of width {index.get('width')}, "
                    f"but {width} was asked for. Delete that folder to rebuild it."
                )
            self._rows = int(index["rows"])
            self._items = {k: (int(v[0]), int(v[1])) for k, v in index["items"].items()}
        data_path = self.root / _DATA
        committed_bytes = self._rows * width * 2
        if data_path.exists() and data_path.stat().st_size > committed_bytes:
            with open(data_path, "r+b") as handle:
                handle.truncate(committed_bytes)
        elif self._rows and (not data_path.exists() or data_path.stat().st_size < committed_bytes):
            raise FeatureStoreError(
                f"The feature store in {self.root} is damaged: {_DATA} is shorter than its index says. "
                "Delete that folder; features will be recomputed."
            )

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        """Every stored key."""
        return list(self._items)

    def n_rows(self, key: str) -> int:
        """Row count of one array without reading it."""
        return self._items[key][1]

    def location(self, key: str) -> tuple[int, int]:
        """(first row, row count) of one array in the store's row space."""
        return self._items[key]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows by absolute row number (any index shape): one gather for many windows."""
        return self._mapped()[index]

    def _mapped(self) -> np.memmap:
        if self._map is None or self._map.shape[0] != self._rows:
            self._map = np.memmap(
                self.root / _DATA, dtype=np.uint16, mode="r", shape=(self._rows, self.width)
            )
        return self._map

    def floats(self, key: str) -> FloatFeatures:
        """The array stored under `key` as float features, read from the file only where sliced."""
        start, count = self._items[key]
        return FloatFeatures(self.root / _DATA, start, count, self.width)

    def get(self, key: str) -> np.ndarray:
        """The array stored under `key` (a read-only memory-mapped view)."""
        start, count = self._items[key]
        if count == 0:
            return np.zeros((0, self.width), dtype=np.uint16)
        return self._mapped()[start : start + count]

    def put_many(self, items: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]) -> int:
        """Append arrays (keys already present are skipped); returns how many were added."""
        pairs = items.items() if isinstance(items, Mapping) else items
        added: dict[str, tuple[int, int]] = {}
        rows = self._rows
        with self._appending() as handle:
            for key, array in pairs:
                if key in self._items or key in added:
                    continue
                arr = self._checked(key, array)
                handle.write(arr.tobytes())
                added[key] = (rows, arr.shape[0])
                rows += arr.shape[0]
        self._commit(added, rows)
        return len(added)

    def put_blocks(self, key: str, blocks: Iterable[np.ndarray]) -> bool:
        """Append one array given as consecutive row blocks (a long recording, never whole in memory);
        False when `key` is already stored. Nothing is committed unless every block was written."""
        if key in self._items:
            return False
        rows = self._rows
        with self._appending() as handle:
            for block in blocks:
                arr = self._checked(key, block)
                handle.write(arr.tobytes())
                rows += arr.shape[0]
        self._commit({key: (self._rows, rows - self._rows)}, rows)
        return True

    def _checked(self, key: str, array: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(array, dtype=np.uint16)
        if arr.ndim != 2 or arr.shape[1] != self.width:
            raise FeatureStoreError(f"array for {key!r} has shape {arr.shape}, expected (n, {self.width})")
        return arr

    @contextmanager
    def _appending(self) -> Iterator[BinaryIO]:
        """The data file opened for appending. Whatever goes wrong before the rows are committed (a full
        disk, unreadable audio, Ctrl-C), the file is cut back to its committed rows, so no half-written
        array stays behind; a failed write is a FeatureStoreError that says what to do."""
        data_path = self.root / _DATA
        try:
            with open(data_path, "ab") as handle:
                yield handle
                handle.flush()
        except BaseException as exc:
            self._cut_to_committed(data_path)
            if isinstance(exc, OSError):
                raise FeatureStoreError(_write_failure(self.root, exc)) from exc
            raise

    def _cut_to_committed(self, data_path: Path) -> None:
        committed = self._rows * self.width * 2
        with suppress(OSError), open(data_path, "r+b") as handle:
            handle.truncate(committed)

    def _commit(self, added: Mapping[str, tuple[int, int]], rows: int) -> None:
        """Make appended rows part of the store: the index is replaced atomically, and only then do this
        object's keys include them (a failed index write leaves the store as it was)."""
        if not added:
            return
        index = {**{k: list(v) for k, v in self._items.items()}, **{k: list(v) for k, v in added.items()}}
        try:
            atomic_write_json(self.root / _INDEX, {"width": self.width, "rows": rows, "items": index})
        except OSError as exc:
            self._cut_to_committed(self.root / _DATA)
            raise FeatureStoreError(_write_failure(self.root, exc)) from exc
        self._items.update(added)
        self._rows = rows


def _write_failure(root: Path, exc: OSError) -> str:
    """One paragraph for a store that could not be written."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL_ERRNOS:
        fix = (
            "The disk is full: free some space, or point paths.processed_dir at a disk with room, and run "
            "again"
        )
    elif exc.errno in NOT_WRITABLE_ERRNOS:
        fix = (
            "The folder is not writable: fix its permissions, or point paths.processed_dir at a folder you "
            "can write to"
        )
    else:
        fix = "Check the disk and run again"
    return (
        f"Features could not be written to the feature store in {root} ({reason}). {fix}. The features "
        "stored before are intact, and nothing half-written was kept."
    )

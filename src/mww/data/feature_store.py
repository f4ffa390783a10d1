"""An on-disk store of ragged uint16 feature arrays, memory-mapped for reading.

Layout of one store folder:
  frames.u16   every array's rows, appended one after another (uint16, row width fixed)
  index.json   {"width": W, "rows": committed row count, "items": {key: [first_row, n_rows]}}

Writers append rows, flush, then replace index.json atomically; rows past the committed count
(left by a crash between the two steps) are cut off on the next open. One writer at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from mww.atomic import atomic_write_json
from mww.errors import MwwError

_DATA = "frames.u16"
_INDEX = "index.json"


class FeatureStoreError(MwwError):
    """The store's files do not agree with each other or with the caller."""


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
        with open(self.root / _DATA, "ab") as handle:
            for key, array in pairs:
                if key in self._items or key in added:
                    continue
                arr = np.ascontiguousarray(array, dtype=np.uint16)
                if arr.ndim != 2 or arr.shape[1] != self.width:
                    raise FeatureStoreError(
                        f"array for {key!r} has shape {arr.shape}, expected (n, {self.width})"
                    )
                handle.write(arr.tobytes())
                added[key] = (rows, arr.shape[0])
                rows += arr.shape[0]
            handle.flush()
        if added:
            self._items.update(added)
            self._rows = rows
            atomic_write_json(
                self.root / _INDEX,
                {
                    "width": self.width,
                    "rows": self._rows,
                    "items": {k: list(v) for k, v in self._items.items()},
                },
            )
        return len(added)

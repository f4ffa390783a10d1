"""Precomputed feature sets: spectrograms made elsewhere, read as training negatives or ambient audio.

The microWakeWord project publishes negative sets (speech, dinner party audio, sounds without speech
and a long dinner-party recording for evaluation) as folders of mmap_ninja RaggedMmaps made with the
same front end as the device (docs/feature-sets.md). A set is listed in `data.feature_sets` and laid
out as

  <set>/training/**/*_mmap             training negatives            (role `training` or `both`)
  <set>/validation_ambient/**/*_mmap   audio for FA/h in validation  (role `ambient` or `both`)
  <set>/testing_ambient/**/*_mmap      audio for FA/h on the test split
  <set>/validation/, <set>/testing/    clip sets; not read

Every `*_mmap` folder holds uint16 arrays of shape (frames, 40), one row per 10 ms; they are read as
the project's own features are (value × 0.0390625, `mww.device.features.uint16_to_float`). A training
array is sampled like the dataset's negatives (`mww.data.sampler`), straight from the memory map. An
ambient array is streamed whole to the device's detector like an ambient recording; its duration is
its frame count × 10 ms. Arrays shorter than the model's input window are left out of the ambient
audio (nothing of them could be scored), and empty arrays out of training.

A set that is not of this front end is refused before anything is trained or written: a missing
folder, an empty `*_mmap`, another dtype, another number of bins, or values no front-end output
reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mww.config.schema import FeatureSetConfig, MwwConfig
from mww.data.sampler import Source
from mww.device.constants import MEL_BINS, WINDOW_STEP_MS
from mww.device.features import uint16_to_float
from mww.errors import MwwError

# The folders of a set each role reads.
ROLE_FOLDERS = {
    "training": ("training",),
    "ambient": ("validation_ambient", "testing_ambient"),
    "both": ("training", "validation_ambient", "testing_ambient"),
}
# The ambient folder of each evaluation split.
AMBIENT_FOLDERS = {"validation": "validation_ambient", "test": "testing_ambient"}
# The device front end's uint16 outputs stay far below this: full-scale white noise, tones, square
# waves and chirps reach about 670 (26 in the float scale, where the device's int8 input saturates).
# Larger values come from another front end or another scale.
MAX_FRONT_END_VALUE = 1000
CHECKED_ARRAYS = 64  # arrays of each `*_mmap` whose values are checked, spread over it
_RAGGED_FILES = (
    "shapes_are_flat.ninja",
    "data.ninja",
    "dtype.ninja",
    "shape.ninja",
    "starts",
    "ends",
    "shapes",
    "flattened_shapes",
)


class FeatureSetError(MwwError):
    """A feature set cannot be read as this project's features; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass
class RaggedArrays:
    """One `*_mmap` folder: ragged uint16 arrays (frames, 40) in one memory map, keyed "0", "1", ...

    It reads like a `mww.data.feature_store.FeatureStore` (`location`, `rows`, `get`), so the
    window sampler draws from it directly."""

    path: Path
    first_row: np.ndarray  # int64 [n]: the row each array starts at
    n_rows: np.ndarray  # int64 [n]: its number of rows
    table: np.ndarray  # uint16 [total rows, 40]: every array's rows, memory-mapped
    width: int = MEL_BINS

    def __len__(self) -> int:
        return int(self.n_rows.size)

    def keys(self) -> list[str]:
        """The keys of the arrays that hold at least one row."""
        return [str(i) for i in np.flatnonzero(self.n_rows > 0)]

    def location(self, key: str) -> tuple[int, int]:
        """(first row, row count) of one array."""
        i = int(key)
        return int(self.first_row[i]), int(self.n_rows[i])

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows by absolute row number (any index shape)."""
        return self.table[index]

    def get(self, key: str) -> np.ndarray:
        """One array (a read-only memory-mapped view)."""
        start, count = self.location(key)
        return self.table[start : start + count]


@dataclass
class FeatureSet:
    """One entry of `data.feature_sets`, opened and checked: its `*_mmap` folders by subfolder."""

    name: str
    config: FeatureSetConfig
    parts: dict[str, list[RaggedArrays]] = field(default_factory=dict)


def _refuse(entry: str, problem: str, fix: str) -> FeatureSetError:
    return FeatureSetError(
        f"{entry} cannot be used: {problem}. This project reads the microWakeWord project's feature sets "
        "(mmap_ninja RaggedMmap folders named *_mmap of uint16 spectrograms with 40 bins, from the same "
        f"front end as the device; see docs/feature-sets.md). {fix}"
    )


def _read_ragged(folder: Path, entry: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(array shapes [n, d], element offsets [n], flat values) of a RaggedMmap, read-only."""
    from mmap_ninja.ragged import RaggedMmap

    try:
        ragged = RaggedMmap(folder, mode="r")
        count = len(ragged)
        if count == 0:
            raise _refuse(entry, f"the RaggedMmap in {folder} holds no arrays", "Remove the empty folder.")
        shapes = ragged.shapes
        if ragged.shapes_are_flat:  # every array one-dimensional
            dims = np.ones(count, dtype=np.int64)
        else:
            dims = np.asarray(shapes.ends, dtype=np.int64) - np.asarray(shapes.starts, dtype=np.int64)
        pairs = np.asarray(shapes.memmap, dtype=np.int64).reshape(count, 2) if np.all(dims == 2) else None
        starts = np.asarray(ragged.starts, dtype=np.int64)
        values = ragged.memmap
    except FeatureSetError:
        raise
    except Exception as exc:  # mmap_ninja raises whatever numpy or the file system raise
        raise _refuse(
            entry, f"the RaggedMmap in {folder} could not be read ({exc})", "Download or make it again."
        ) from exc
    if pairs is None:
        raise _refuse(
            entry,
            f"the arrays in {folder} are not two-dimensional (frames x bins)",
            "Use a set of spectrograms.",
        )
    return pairs, starts, values


def open_arrays(folder: Path, entry: str) -> RaggedArrays:
    """Open one `*_mmap` folder read-only and check it holds this front end's features."""
    missing = [name for name in _RAGGED_FILES if not (folder / name).exists()]
    if missing:  # opening it would create the missing parts: refuse first
        fix = "Remove the folder, or make it again with mmap_ninja's RaggedMmap."
        if not any(folder.iterdir()):
            raise _refuse(entry, f"the folder {folder} is empty (it holds no RaggedMmap)", fix)
        raise _refuse(
            entry, f"the folder {folder} is not a complete RaggedMmap (no {', '.join(missing)})", fix
        )
    pairs, starts, values = _read_ragged(folder, entry)
    if values.dtype != np.uint16:
        raise _refuse(
            entry,
            f"the arrays in {folder} are {values.dtype}, not uint16",
            "Use the uint16 sets; float spectrograms are not read.",
        )
    widths = sorted(set(pairs[:, 1].tolist()))
    if widths != [MEL_BINS]:
        shown = ", ".join(str(w) for w in widths[:5])
        raise _refuse(
            entry,
            f"its spectrograms in {folder} have {shown} bins, while the device's front end computes "
            f"{MEL_BINS}",
            "A set made with another front end cannot train a model for the device; use the sets made "
            "for microWakeWord (40 bins).",
        )
    table = np.asarray(values).reshape(-1, MEL_BINS)
    arrays = RaggedArrays(folder, starts // MEL_BINS, pairs[:, 0].copy(), table)
    _check_values(arrays, entry)
    return arrays


def _check_values(arrays: RaggedArrays, entry: str) -> None:
    """Values above what the front end outputs (in arrays spread over the folder) are refused."""
    picked = np.unique(np.linspace(0, len(arrays) - 1, min(CHECKED_ARRAYS, len(arrays))).astype(np.int64))
    for i in picked:
        values = arrays.get(str(i))
        top = int(values.max()) if values.size else 0
        if top > MAX_FRONT_END_VALUE:
            raise _refuse(
                entry,
                f"array {i} in {arrays.path} holds the value {top}, while the device's front end never "
                f"outputs more than about 670 (this check allows up to {MAX_FRONT_END_VALUE})",
                "The set comes from another front end or was scaled differently; use the sets made for "
                "microWakeWord.",
            )


def _mmap_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("**/*_mmap") if p.is_dir())


def open_feature_set(entry_cfg: FeatureSetConfig, index: int) -> FeatureSet:
    """Open and check the folders one entry's role reads; FeatureSetError when any is missing or wrong."""
    root = Path(entry_cfg.path)
    entry = f"The feature set data.feature_sets[{index}] ({root}, role {entry_cfg.role})"
    if not root.is_dir():
        raise FeatureSetError(
            f"{entry} cannot be used: {root} is not a folder. Give 'path' the folder that holds the set's "
            "training/, validation_ambient/ and testing_ambient/ folders (unzip a downloaded set first), "
            "or remove the entry."
        )
    found = FeatureSet(root.name, entry_cfg)
    for part in ROLE_FOLDERS[entry_cfg.role]:
        folder = root / part
        if not folder.is_dir():
            raise _refuse(
                entry,
                f"it has no {part}/ folder, which role '{entry_cfg.role}' reads",
                "Point 'path' at the set's top folder, or choose the role its folders allow (training "
                "reads training/; ambient reads validation_ambient/ and testing_ambient/).",
            )
        mmaps = _mmap_folders(folder)
        if not mmaps:
            raise _refuse(entry, f"{folder} holds no *_mmap folder", "Download or unzip the set again.")
        found.parts[part] = [open_arrays(m, entry) for m in mmaps]
    return found


def open_feature_sets(config: MwwConfig) -> list[FeatureSet]:
    """Every set of `data.feature_sets`, opened and checked (two sets may not share a folder name)."""
    sets = [open_feature_set(entry, i) for i, entry in enumerate(config.data.feature_sets)]
    names = [s.name for s in sets]
    twice = [i for i, name in enumerate(names) if names.count(name) > 1]
    if twice:
        first, second = twice[0], names.index(names[twice[0]], twice[0] + 1)
        raise FeatureSetError(
            f"data.feature_sets[{first}] ({sets[first].config.path}) and data.feature_sets[{second}] "
            f"({sets[second].config.path}) are both folders named '{names[first]}'; sets are reported by "
            "their folder name, so each needs its own. Rename one of the folders, or remove the repeated "
            "entry."
        )
    return sets


def training_sources(sets: Sequence[FeatureSet]) -> tuple[list[Source], dict[str, int]]:
    """One sampler source per `*_mmap` of every training set (label 0), and the arrays of each set.

    A set's sampling weight is shared among its `*_mmap` folders by their number of arrays, so every
    array of a set is drawn equally often; its class weight is `class_weight`, or else the negatives'.
    """
    sources, counts = [], {}
    for fs in sets:
        parts = fs.parts.get("training", [])
        if not parts:
            continue
        keys = [arrays.keys() for arrays in parts]
        total = sum(len(k) for k in keys)
        counts[f"{fs.name} (feature set)"] = total
        for arrays, part_keys in zip(parts, keys, strict=True):
            if not part_keys:
                continue
            sources.append(
                Source(
                    f"feature_set:{fs.name}",
                    0,
                    fs.config.sampling_weight * len(part_keys) / total,
                    fs.config.truncation,
                    arrays,
                    part_keys,
                    class_weight=fs.config.class_weight,
                    weight_kind="negative",
                )
            )
    return sources, counts


@dataclass
class AmbientStreams:
    """The ambient arrays of the sets for one split, as float streams with their durations."""

    streams: list[np.ndarray] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # "<*_mmap folder>[<index>]"
    seconds: list[float] = field(default_factory=list)  # frame count × 10 ms
    sets: list[str] = field(default_factory=list)  # the set each stream comes from


def ambient_streams(sets: Sequence[FeatureSet], split: str, input_frames: int) -> AmbientStreams:
    """The ambient arrays of `split` (validation or test; none for others) long enough to be scored."""
    found = AmbientStreams()
    part = AMBIENT_FOLDERS.get(split)
    if part is None:
        return found
    for fs in sets:
        for arrays in fs.parts.get(part, []):
            for i in np.flatnonzero(arrays.n_rows >= input_frames):
                features = np.asarray(arrays.get(str(i)))
                found.streams.append(uint16_to_float(features))
                found.paths.append(Path(f"{arrays.path}[{i}]"))
                found.seconds.append(features.shape[0] * WINDOW_STEP_MS / 1000.0)
                found.sets.append(fs.name)
    return found


def summary_lines(sets: Sequence[FeatureSet]) -> list[str]:
    """One line per set: what each folder it reads holds (arrays and hours at 10 ms per frame)."""
    lines = []
    for fs in sets:
        parts = []
        for part, folders in fs.parts.items():
            arrays = sum(len(a) for a in folders)
            hours = sum(int(a.n_rows.sum()) for a in folders) * WINDOW_STEP_MS / 1000.0 / 3600.0
            parts.append(f"{part} {arrays} arrays ({hours:.2f} h)")
        lines.append(f"feature set {fs.name} ({fs.config.role}): " + ", ".join(parts))
    return lines

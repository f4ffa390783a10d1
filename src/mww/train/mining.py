"""Hard-negative mining: windows of the negative pool that the model scores as the wake word.

Every mining round scores every window of the training negatives (augmented variants, one window
per invocation, as the device would stream them), keeps those at or above `fp_threshold` (at most
`max_samples`, highest first), and training replays them with the hard-negative class weight.
The mined set is saved (JSON for resuming, CSV for a person to listen to them).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mww.atomic import atomic_write_json, atomic_write_text
from mww.data.feature_store import FeatureStore
from mww.data.sources import PoolEntry
from mww.device.constants import WINDOW_STEP_MS
from mww.device.features import uint16_to_float
from mww.model.scoring import StreamScorer, window_ends

MINED_JSON = "mined_hard_negatives.json"
MINED_CSV = "mined_hard_negatives.csv"
MINING_BATCH = 256  # pool entries scored per scorer call: bounded memory


@dataclass(frozen=True)
class MinedWindow:
    """A window that fired: where it is in the store and in the original file."""

    key: str
    start: int  # first frame of the window in the stored variant
    score: float
    source: str
    offset_s: float  # where the window ends in the source file


def mine_hard_negatives(
    scorer: StreamScorer,
    store: FeatureStore,
    pool: list[PoolEntry],
    input_frames: int,
    stride: int,
    fp_threshold: float,
    max_samples: int,
) -> list[MinedWindow]:
    """Score every streamed window of the pool; keep the highest ones at or above the threshold."""
    found: list[MinedWindow] = []
    step_s = WINDOW_STEP_MS / 1000.0
    for first in range(0, len(pool), MINING_BATCH):
        entries = pool[first : first + MINING_BATCH]
        streams = [uint16_to_float(np.asarray(store.get(entry.key))) for entry in entries]
        for entry, features, scores in zip(entries, streams, scorer(streams), strict=True):
            ends = window_ends(features.shape[0], input_frames, stride)
            clip_start_s = entry.end_frame * step_s - entry.duration_s
            for i in np.flatnonzero(scores >= fp_threshold):
                offset = entry.start_s + min(max(ends[i] * step_s - clip_start_s, 0.0), entry.duration_s)
                found.append(
                    MinedWindow(
                        entry.key,
                        int(ends[i] - input_frames),
                        float(scores[i]),
                        str(entry.path),
                        round(offset, 3),
                    )
                )
    found.sort(key=lambda m: (-m.score, m.key, m.start))
    return found[:max_samples]


def save_mined(folder: Path, mined: list[MinedWindow], step: int) -> Path:
    """Write the mined set: JSON (for resuming) and CSV (source file, time offset, score)."""
    atomic_write_json(folder / MINED_JSON, {"step": step, "windows": [asdict(m) for m in mined]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["source_file", "offset_s", "score", "variant_key", "window_start_frame"])
    for m in mined:
        writer.writerow([m.source, f"{m.offset_s:.3f}", f"{m.score:.4f}", m.key, m.start])
    atomic_write_text(folder / MINED_CSV, buffer.getvalue())
    return folder / MINED_JSON


def load_mined(folder: Path) -> list[MinedWindow]:
    """The mined set saved in `folder` (empty when there is none)."""
    path = folder / MINED_JSON
    if not path.exists():
        return []
    return [MinedWindow(**w) for w in json.loads(path.read_text())["windows"]]

"""Find, check and split the dataset: what training, evaluation and export all start from.

Layout (folders from the config's `paths` section):
  positive/<speaker>/**    wake word clips; the first folder under positive/ is the speaker
  negative/**, hard_negative/**   not the wake word; a first folder named like a positive speaker
                           is that speaker (kept in the same split), otherwise each file stands alone
  background/**, rirs/**   noise and impulse responses for augmentation (never split)
  ambient/**               long recordings for false-activation measurement (validation and test only)
  false_wakes/**           recordings that woke the device: hard negatives of their own, split like
                           negatives (`paths.false_wake_dir`)

Files that cannot be used are skipped, never fatal: one summary line per reason, and every
skipped file with its reason in `<processed_dir>/ingest_report.txt`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mww.atomic import atomic_write_json, atomic_write_text
from mww.config.schema import DataConfig, MwwConfig, PathsConfig
from mww.device.audio import AUDIO_EXTENSIONS, AudioError, audio_blocks
from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError

KINDS = ("positive", "negative", "hard_negative", "background", "rir", "ambient", "false_wake")
SPLIT_KINDS = ("positive", "negative", "hard_negative", "ambient", "false_wake")
SPLITS = ("train", "validation", "test")
REPORT_NAME = "ingest_report.txt"
SPLIT_MANIFEST_NAME = "splits.json"


class IngestError(MwwError):
    """The dataset as a whole cannot be used (a missing required folder, a bad namelist...)."""


@dataclass(frozen=True)
class Clip:
    """One usable audio file."""

    path: Path
    kind: str
    speaker: str | None
    duration_s: float
    split: str | None = None


@dataclass(frozen=True)
class Skipped:
    """One file that was left out, and why."""

    path: Path
    kind: str
    reason: str
    detail: str


@dataclass
class IngestResult:
    """Usable clips (with splits assigned) and skipped files."""

    clips: list[Clip]
    skipped: list[Skipped]
    report_path: Path | None = None
    manifest_path: Path | None = None

    def of(self, kind: str, split: str | None = None) -> list[Clip]:
        """Clips of one kind, optionally of one split."""
        return [c for c in self.clips if c.kind == kind and (split is None or c.split == split)]


def kind_dirs(paths: PathsConfig) -> dict[str, Path]:
    """The folder of each kind, from the config's `paths` section."""
    return {
        "positive": Path(paths.positive_dir),
        "negative": Path(paths.negative_dir),
        "hard_negative": Path(paths.hard_negative_dir),
        "background": Path(paths.background_dir),
        "rir": Path(paths.rir_dir),
        "ambient": Path(paths.ambient_dir),
        "false_wake": Path(paths.false_wake_dir),
    }


def discover(folder: Path) -> list[Path]:
    """Audio files under `folder`, sorted; hidden files and temp files are ignored.

    Linked folders and files are followed (a user's recordings linked in from elsewhere count like
    any others), each real file once under the first path that reaches it, and a folder is never
    entered twice, so a link loop ends. A link that points nowhere is listed too, so the caller can
    report it by name (`check_clip` skips it as a broken link).
    """
    if not folder.is_dir():
        return []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen_dirs:
            dirs[:] = []  # a loop, or a folder already reached through another link
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        here = Path(root)
        for name in sorted(files):  # a link that points nowhere is listed here, never as a folder
            path = here / name
            if name.startswith("."):
                continue
            if path.is_symlink() and not path.exists():
                found.append(path)
                continue
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            st = path.stat()
            if (st.st_dev, st.st_ino) not in seen_files:
                seen_files.add((st.st_dev, st.st_ino))
                found.append(path)
    return sorted(found)


def first_folder(path: Path, root: Path) -> str | None:
    """Name of the first folder under `root` on the way to `path` (None for files directly in root)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def load_namelist(path: str | os.PathLike[str], dataset_dir: str | os.PathLike[str]) -> dict[Path, str]:
    """Read a speaker-clustering namelist: {"mappings": {file: speaker}}.

    File paths may be absolute or relative to `dataset_dir` (the folder the clustering ran on).
    """
    source = Path(path)
    try:
        data = json.loads(source.read_text())
        mappings = data["mappings"]
        if not isinstance(mappings, dict):
            raise TypeError("mappings is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IngestError(
            f"The speaker namelist {source} could not be used ({exc}). It must be JSON of the form "
            '{"_meta": {...}, "mappings": {"<file path>": "speaker_0001", ...}} as written by '
            "mww-cluster-analyze; rerun the analysis or fix the file."
        ) from None
    base = Path(dataset_dir)
    return {(Path(k) if Path(k).is_absolute() else base / k).resolve(): str(v) for k, v in mappings.items()}


def _bounds(kind: str, data: DataConfig) -> tuple[float, float]:
    if kind in ("positive", "hard_negative"):
        return data.min_duration_s, data.max_positive_duration_s
    if kind == "rir":
        return 0.0, data.max_positive_duration_s
    return data.min_duration_s, data.max_negative_duration_s


def check_clip(path: Path, kind: str, min_s: float, max_s: float, silence_dbfs: float) -> Clip | Skipped:
    """Decode one file and decide whether it is usable (speaker and split are filled in later)."""
    if path.is_symlink() and not path.exists():
        return Skipped(
            path, kind, "broken_link", f"the link points to {os.readlink(path)}, which does not exist"
        )
    count, peak = 0, 0.0
    try:
        for block in audio_blocks(path):  # block by block: a recording of hours is never whole in memory
            count += block.size
            peak = max(peak, float(np.max(np.abs(block)))) if block.size else peak
    except AudioError as exc:
        return Skipped(path, kind, exc.reason, exc.detail)
    if count == 0:
        return Skipped(path, kind, "empty", "the file holds no samples")
    duration = count / SAMPLE_RATE_HZ
    peak_db = 20.0 * np.log10(peak) if peak > 0 else float("-inf")
    if peak_db < silence_dbfs:
        return Skipped(path, kind, "silent", f"peak {peak_db:.1f} dBFS is below {silence_dbfs:.1f} dBFS")
    if duration < min_s:
        return Skipped(path, kind, "too_short", f"{duration:.3f} s is shorter than {min_s:.3f} s")
    if duration > max_s:
        return Skipped(path, kind, "too_long", f"{duration:.3f} s is longer than {max_s:.3f} s")
    return Clip(path=path, kind=kind, speaker=None, duration_s=round(duration, 6))


def _check_task(task: tuple[Path, str, float, float, float]) -> Clip | Skipped:
    return check_clip(*task)


def assign_speakers(
    clips: Sequence[Clip], dirs: Mapping[str, Path], namelist: Mapping[Path, str]
) -> list[Clip]:
    """Speaker ids: namelist first, else the first folder under positive/ (see module docstring)."""
    positive_speakers = {
        namelist.get(c.path.resolve()) or first_folder(c.path, dirs["positive"])
        for c in clips
        if c.kind == "positive"
    } - {None}
    out = []
    for clip in clips:
        speaker = namelist.get(clip.path.resolve())
        if speaker is None and clip.kind == "positive":
            speaker = first_folder(clip.path, dirs["positive"])
        elif speaker is None and clip.kind in ("negative", "hard_negative", "false_wake"):
            folder = first_folder(clip.path, dirs[clip.kind])
            speaker = folder if folder in positive_speakers else None
        out.append(replace(clip, speaker=speaker))
    return out


def _unit_hash(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_speakers(
    speaker_sizes: Mapping[str, int],
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    pinned: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Assign whole speakers to splits, aiming at the fractions by clip count.

    Deterministic: speakers are visited in seeded-hash order. With three or more free speakers,
    validation and test each get at least one (when their fraction is above zero).
    """
    pinned = dict(pinned or {})
    assignment = {s: pinned[s] for s in speaker_sizes if s in pinned}
    total = sum(speaker_sizes.values())
    free = sorted((s for s in speaker_sizes if s not in pinned), key=lambda s: (_unit_hash(seed, s), s))
    filled = Counter(
        {split: sum(speaker_sizes[s] for s, v in assignment.items() if v == split) for split in SPLITS}
    )
    targets = {"test": test_fraction * total, "validation": validation_fraction * total}
    for split in ("test", "validation"):
        need_one = targets[split] > 0 and filled[split] == 0 and len(free) >= 3
        while free and (filled[split] + speaker_sizes[free[0]] / 2 <= targets[split] or need_one):
            speaker = free.pop(0)
            assignment[speaker] = split
            filled[split] += speaker_sizes[speaker]
            need_one = False
    for speaker in free:
        assignment[speaker] = "train"
    return assignment


def split_of_file(name: str, seed: int, validation_fraction: float, test_fraction: float) -> str:
    """Split of a file with no speaker: a seeded hash of its name (see `split_name`), stable when
    files are added."""
    u = _unit_hash(seed, name)
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def split_name(clip: Clip, dirs: Mapping[str, Path]) -> str:
    """What a speakerless file's split is drawn from: its kind and its path inside the kind's folder,
    so the same dataset in another folder splits the same way (the absolute path where it is not
    under that folder)."""
    folder = dirs.get(clip.kind)
    if folder is not None:
        try:
            return f"{clip.kind}/{Path(clip.path).relative_to(folder).as_posix()}"
        except ValueError:
            pass
    return Path(clip.path).as_posix()


def assign_splits(
    clips: Sequence[Clip],
    data: DataConfig,
    previous: Mapping[str, str] | None = None,
    dirs: Mapping[str, Path] | None = None,
) -> list[Clip]:
    """Speaker-disjoint, deterministic splits; files already in `previous` (path → split) keep theirs.

    `dirs` (kind → folder, as `kind_dirs` gives) makes the split of files with no speaker independent
    of where the dataset lies."""
    previous, dirs = previous or {}, dirs or {}
    pinned = {s: "test" for s in data.test_speakers} | {s: "validation" for s in data.validation_speakers}
    sizes: Counter[str] = Counter(c.speaker for c in clips if c.speaker is not None and c.kind in SPLIT_KINDS)
    for clip in clips:  # a speaker seen before keeps the split it had
        if clip.speaker is not None and clip.speaker not in pinned and str(clip.path) in previous:
            pinned[clip.speaker] = previous[str(clip.path)]
    by_speaker = split_speakers(sizes, data.split_seed, data.validation_fraction, data.test_fraction, pinned)
    ambient = sorted(
        (c for c in clips if c.kind == "ambient"),
        key=lambda c: _unit_hash(data.split_seed, split_name(c, dirs)),
    )
    ambient_split = {c.path: ("validation", "test")[i % 2] for i, c in enumerate(ambient)}
    out = []
    for clip in clips:
        if clip.kind not in SPLIT_KINDS:
            split = None
        elif clip.speaker is not None:
            split = by_speaker[clip.speaker]
        elif str(clip.path) in previous:
            split = previous[str(clip.path)]
        elif clip.kind == "ambient":
            split = ambient_split[clip.path]
        else:
            split = split_of_file(
                split_name(clip, dirs), data.split_seed, data.validation_fraction, data.test_fraction
            )
        out.append(replace(clip, split=split))
    return out


def _split_meta(data: DataConfig) -> dict[str, Any]:
    return {
        "split_seed": data.split_seed,
        "validation_fraction": data.validation_fraction,
        "test_fraction": data.test_fraction,
        "test_speakers": sorted(data.test_speakers),
        "validation_speakers": sorted(data.validation_speakers),
    }


def load_split_manifest(path: Path, data: DataConfig) -> dict[str, str]:
    """Previous splits (path → split) when the manifest exists and was made with the same split settings."""
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("_meta", {}).get("settings") != _split_meta(data):
            return {}
        return {p: entry["split"] for p, entry in manifest["files"].items() if entry.get("split")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_split_manifest(path: Path, clips: Sequence[Clip], data: DataConfig) -> Path:
    """Write the split of every clip, so later stages and reruns use the same one."""
    counts = Counter(f"{c.kind}/{c.split}" for c in clips if c.split)
    manifest = {
        "_meta": {"settings": _split_meta(data), "counts": dict(sorted(counts.items()))},
        "files": {
            str(c.path): {"kind": c.kind, "speaker": c.speaker, "split": c.split, "duration_s": c.duration_s}
            for c in clips
        },
    }
    return atomic_write_json(path, manifest)


def write_report(path: Path, skipped: Sequence[Skipped]) -> Path:
    """Every skipped file and why, tab-separated."""
    lines = [
        f"# ingest report {datetime.now(UTC).isoformat(timespec='seconds')}: {len(skipped)} files skipped",
        "# kind\treason\tpath\tdetail",
    ]
    lines += [f"{s.kind}\t{s.reason}\t{s.path}\t{s.detail}" for s in skipped]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def summary_lines(result: IngestResult) -> list[str]:
    """One line per skip reason, then clip counts per kind and split."""
    lines = []
    for (kind, reason), n in sorted(Counter((s.kind, s.reason) for s in result.skipped).items()):
        lines.append(f"skipped {n} {kind} file(s): {reason} (see {result.report_path})")
    for kind in KINDS:
        clips = result.of(kind)
        if not clips:
            continue
        hours = sum(c.duration_s for c in clips) / 3600
        per_split = Counter(c.split for c in clips if c.split)
        detail = ", ".join(f"{s} {per_split[s]}" for s in SPLITS if per_split[s])
        speakers = len({c.speaker for c in clips if c.speaker})
        extra = f", {speakers} speakers" if speakers else ""
        lines.append(f"{kind}: {len(clips)} clips, {hours:.2f} h{extra}" + (f" ({detail})" if detail else ""))
    return lines


def ingest(
    config: MwwConfig,
    namelist: Mapping[Path, str] | None = None,
    num_workers: int = 1,
    progress: bool = False,
) -> IngestResult:
    """Discover, check, label and split every clip; writes the report and the split manifest."""
    dirs = kind_dirs(config.paths)
    if not discover(dirs["positive"]):
        raise IngestError(
            f"No audio files were found under the positive folder {dirs['positive']}. Put wake word "
            "recordings there as positive/<speaker>/*.wav (or set paths.positive_dir in your config), "
            "or run mww-generate for a demo dataset."
        )
    tasks = []
    for kind in KINDS:
        low, high = _bounds(kind, config.data)
        tasks += [(p, kind, low, high, config.data.silence_threshold_dbfs) for p in discover(dirs[kind])]
    bar = tqdm(total=len(tasks), desc="checking audio", unit="file", disable=not progress)
    checked: list[Clip | Skipped] = []
    workers = max(1, min(num_workers, len(tasks) // 64 + 1))
    if workers == 1:
        for task in tasks:
            checked.append(_check_task(task))
            bar.update(1)
    else:
        with get_context("spawn").Pool(workers) as pool:
            for item in pool.imap(_check_task, tasks, chunksize=32):
                checked.append(item)
                bar.update(1)
    bar.close()
    clips = [c for c in checked if isinstance(c, Clip)]
    skipped = [s for s in checked if isinstance(s, Skipped)]
    clips = assign_speakers(clips, dirs, namelist or {})
    processed = Path(config.paths.processed_dir)
    manifest_path = processed / SPLIT_MANIFEST_NAME
    clips = assign_splits(clips, config.data, load_split_manifest(manifest_path, config.data), dirs)
    report_path = write_report(processed / REPORT_NAME, skipped)
    write_split_manifest(manifest_path, clips, config.data)
    return IngestResult(clips=clips, skipped=skipped, report_path=report_path, manifest_path=manifest_path)

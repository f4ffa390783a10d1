"""The leakage audit: clips of one voice in two training splits, and near-duplicate clips across splits.

Speakers come from a clustering (`mww.cluster.speaker_tree`); splits from the training split manifest
(`<processed_dir>/splits.json`, written by `mww.data.ingest`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mww.cluster.speaker_tree import BLOCK_ROWS, SIMILARITY_TOLERANCE
from mww.data.ingest import SPLITS
from mww.errors import MwwError


class ClusterError(MwwError):
    """Input the analysis cannot use, explained in one paragraph (what, which file, what to do)."""


@dataclass
class SplitInfo:
    """One file's entry in the training split manifest."""

    split: str
    speaker: str | None
    kind: str | None


def load_split_manifest(path: Path) -> dict[Path, SplitInfo]:
    """Resolved path → split entry, from `<processed_dir>/splits.json` as written by mww.data.ingest."""
    try:
        data = json.loads(Path(path).read_text())
        files = data["files"]
        out = {}
        for name, entry in files.items():
            if entry.get("split"):
                out[Path(name).resolve()] = SplitInfo(entry["split"], entry.get("speaker"), entry.get("kind"))
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClusterError(
            f"The training split manifest {path} could not be read ({type(exc).__name__}: {exc}). It is "
            "written by `mww-prepare` (and by mww-train); rerun that to rewrite it, or run "
            "the "
            "analysis without --fail-on-leak."
        ) from None


@dataclass
class ClusterLeak:
    """A cluster (one voice) whose clips are in more than one split."""

    speaker: str
    per_split: dict[str, int]
    folder_speakers: dict[str, list[str]]
    examples: dict[str, list[Path]]


@dataclass
class NearDuplicate:
    """Two clips in different splits that are almost the same recording."""

    first: Path
    second: Path
    first_split: str
    second_split: str
    similarity: float
    identical: bool


@dataclass
class LeakageReport:
    """What the audit found."""

    manifest_path: Path
    audited: int
    not_in_manifest: list[Path]
    cluster_leaks: list[ClusterLeak]
    near_duplicates: list[NearDuplicate]
    near_duplicate_total: int
    near_duplicate_threshold: float

    @property
    def has_leak(self) -> bool:
        """True when a voice or a near-duplicate clip is in more than one split."""
        return bool(self.cluster_leaks or self.near_duplicate_total)


def leakage_audit(
    paths: Sequence[Path],
    unit: np.ndarray,
    speakers: Sequence[str],
    hashes: Sequence[str],
    manifest: Mapping[Path, SplitInfo],
    manifest_path: Path,
    near_duplicate_threshold: float,
    max_pairs: int = 1000,
    block_rows: int = BLOCK_ROWS,
) -> LeakageReport:
    """Clusters found in more than one split, and near-duplicate clips across splits.

    Near duplicates are pairs in different splits with cosine similarity >= `near_duplicate_threshold`
    (compared in blocks, never as an n×n matrix); identical file contents are marked. At most
    `max_pairs` pairs are kept (the most similar first), all are counted.
    """
    resolved = [Path(p).resolve() for p in paths]
    known = [i for i, p in enumerate(resolved) if p in manifest]
    missing = [paths[i] for i, p in enumerate(resolved) if p not in manifest]
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i in known:
        by_speaker[speakers[i]].append(i)
    leaks = []
    for speaker, members in sorted(by_speaker.items()):
        splits = Counter(manifest[resolved[i]].split for i in members)
        if len(splits) < 2:
            continue
        folders: dict[str, set[str]] = defaultdict(set)
        examples: dict[str, list[Path]] = defaultdict(list)
        for i in members:
            info = manifest[resolved[i]]
            folders[info.split].add(info.speaker or "(no speaker: split file by file)")
            if len(examples[info.split]) < 3:
                examples[info.split].append(paths[i])
        order = [s for s in SPLITS if s in splits] + sorted(set(splits) - set(SPLITS))
        leaks.append(
            ClusterLeak(
                speaker,
                {s: splits[s] for s in order},
                {s: sorted(folders[s]) for s in order},
                {s: examples[s] for s in order},
            )
        )
    groups: dict[str, list[int]] = defaultdict(list)
    for i in known:
        groups[manifest[resolved[i]].split].append(i)
    names = [s for s in SPLITS if s in groups] + sorted(set(groups) - set(SPLITS))
    pairs: list[NearDuplicate] = []
    total = 0
    limit = near_duplicate_threshold - SIMILARITY_TOLERANCE
    for a_pos, a_name in enumerate(names):
        a_idx = np.asarray(groups[a_name])
        for b_name in names[a_pos + 1 :]:
            b_idx = np.asarray(groups[b_name])
            base = unit[b_idx]
            for start in range(0, a_idx.size, block_rows):
                rows = a_idx[start : start + block_rows]
                sims = unit[rows] @ base.T
                hit_r, hit_c = np.nonzero(sims >= limit)
                total += hit_r.size
                if hit_r.size > max_pairs:  # keep only the most similar of this block
                    best = np.argpartition(-sims[hit_r, hit_c], max_pairs - 1)[:max_pairs]
                    hit_r, hit_c = hit_r[best], hit_c[best]
                for r, c in zip(hit_r.tolist(), hit_c.tolist(), strict=True):
                    i, j = int(rows[r]), int(b_idx[c])
                    pairs.append(
                        NearDuplicate(
                            paths[i], paths[j], a_name, b_name, float(sims[r, c]), hashes[i] == hashes[j]
                        )
                    )
                if len(pairs) > 4 * max_pairs:
                    pairs = sorted(pairs, key=lambda p: -p.similarity)[:max_pairs]
    pairs = sorted(pairs, key=lambda p: (-p.similarity, str(p.first), str(p.second)))[:max_pairs]
    return LeakageReport(manifest_path, len(known), missing, leaks, pairs, total, near_duplicate_threshold)


def leakage_text(report: LeakageReport) -> str:
    """The leakage audit as human-readable text."""
    lines = [
        f"# leakage audit {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"split manifest: {report.manifest_path}",
        f"clips audited: {report.audited} (clips not in the split manifest: {len(report.not_in_manifest)})",
        "",
    ]
    if not report.has_leak:
        lines.append(
            "No leak found: every cluster is within one split, and no near-duplicate clips "
            f"(similarity >= {report.near_duplicate_threshold}) are in different splits."
        )
    lines.append(f"## clusters (voices) in more than one split: {len(report.cluster_leaks)}")
    if report.cluster_leaks:
        lines.append(
            "The same voice in training and in validation/test makes the metrics look better than the device "
            "will be. Merge the folder speakers listed for each cluster (or apply the namelist with "
            "mww-cluster-apply) and prepare the data again."
        )
    for leak in report.cluster_leaks:
        counts = ", ".join(f"{split} {n}" for split, n in leak.per_split.items())
        lines.append(f"{leak.speaker}: {counts}")
        for split, folders in leak.folder_speakers.items():
            lines.append(f"  {split}: folder speakers {', '.join(folders)}")
            lines += [f"    {path}" for path in leak.examples[split]]
    lines.append("")
    lines.append(
        f"## near-duplicate clips in different splits (similarity >= {report.near_duplicate_threshold}): "
        f"{report.near_duplicate_total}"
        + (
            f" (the {len(report.near_duplicates)} most similar listed)"
            if report.near_duplicate_total > len(report.near_duplicates)
            else ""
        )
    )
    for pair in report.near_duplicates:
        same = " identical file" if pair.identical else ""
        lines.append(
            f"{pair.similarity:.4f}{same}: [{pair.first_split}] {pair.first}  <->  "
            f"[{pair.second_split}] {pair.second}"
        )
    if report.not_in_manifest:
        lines += [
            "",
            "## clips not in the split manifest (not audited; prepare the data again to include them)",
        ]
        lines += [f"  {path}" for path in report.not_in_manifest[:200]]
        if len(report.not_in_manifest) > 200:
            lines.append(f"  ... and {len(report.not_in_manifest) - 200} more")
    return "\n".join(lines) + "\n"

"""What mww-cluster-analyze writes about a clustering: the namelist (file -> speaker) and the human report.

The report gives the settings, the cluster sizes, the singletons, the most and least cohesive clusters
(with the clips closest to and farthest from their centre), the cluster count the silhouette suggests,
the files that could not be used and the result of the leakage audit.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mww.cluster.leakage import LeakageReport
from mww.cluster.speaker_tree import SILHOUETTE_SAMPLE, Clustering, member_similarity

SIZE_BUCKETS = ("1", "2-4", "5-19", "20-99", "100+")
LISTED_CLUSTERS = 100  # clusters listed by size; the rest are counted
LISTED_SINGLETONS = 50


def speaker_names(labels: np.ndarray) -> list[str]:
    """speaker_0001 for label 0 (the largest cluster), speaker_0002 for label 1, ..."""
    return [f"speaker_{int(label) + 1:04d}" for label in labels]


def namelist_data(paths: Sequence[Path], speakers: Sequence[str], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The namelist: {"_meta": {...}, "mappings": {"<absolute file path>": "speaker_0001", ...}}."""
    mappings = {
        str(Path(p).resolve()): s
        for p, s in sorted(zip(paths, speakers, strict=True), key=lambda x: str(x[0]))
    }
    return {"_meta": dict(meta), "mappings": mappings}


def suggested_count(silhouette: Mapping[int, float]) -> int | None:
    """The cluster count with the highest silhouette (the smaller one on a tie); None without any."""
    return max(silhouette, key=lambda k: (silhouette[k], -k)) if silhouette else None


def report_text(
    dataset: str,
    meta: Mapping[str, Any],
    clustering: Clustering,
    paths: Sequence[Path],
    skipped: Sequence[tuple[Path, str]],
    silhouette: Mapping[int, float],
    leakage: LeakageReport | None,
    leakage_note: str | None,
    examples: int = 3,
    extremes: int = 5,
) -> str:
    """The human report: settings, cluster sizes, singletons, most/least cohesive, suggested n, audit."""
    per_clip, cohesion = member_similarity(clustering.unit, clustering.labels)
    sizes = np.bincount(clustering.labels, minlength=clustering.count)
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(clustering.labels.tolist()):
        members[label].append(i)
    lines = _settings(dataset, meta, clustering, len(paths), len(skipped), sizes)
    lines += _sizes(clustering.count, sizes, cohesion)
    lines += _singletons([paths[members[label][0]] for label in range(clustering.count) if sizes[label] == 1])
    ranked = sorted(
        (label for label in range(clustering.count) if sizes[label] > 1),
        key=lambda label: (-cohesion[label], label),
    )
    lines += _cohesive(ranked, members, sizes, cohesion, per_clip, paths, examples, extremes)
    lines += _suggested(silhouette, clustering.count, len(paths))
    if skipped:
        lines += ["", f"## skipped files: {len(skipped)}"]
        lines += [f"  {path}\t{reason}" for path, reason in skipped]
    lines += ["", "## leakage audit"]
    if leakage is not None:
        lines.append(
            f"{len(leakage.cluster_leaks)} cluster(s) in more than one split, {leakage.near_duplicate_total} "
            f"near-duplicate pair(s) across splits; details in {dataset}_leakage_report.txt"
        )
    else:
        lines.append(leakage_note or "not run")
    return "\n".join(lines) + "\n"


def _name(label: int) -> str:
    return f"speaker_{label + 1:04d}"


def _settings(
    dataset: str, meta: Mapping[str, Any], clustering: Clustering, clips: int, skipped: int, sizes: np.ndarray
) -> list[str]:
    """The report's heading: how the clips were embedded, clustered and cut, and how many there are."""
    cut = (
        f"exactly {clustering.n_clusters} clusters"
        if clustering.n_clusters is not None
        else f"similarity threshold {clustering.threshold} "
        "(clips join when their similarity is >= it under this linkage)"
    )
    return [
        f"# speaker clustering report: {dataset}",
        f"date: {meta['date']}",
        f"model: {meta['model']} (fingerprint {meta.get('model_fingerprint')})",
        f"method: {meta['method']}: {clustering.tree.describe()}",
        f"cut: {cut}",
        f"clips clustered: {clips}; skipped (unreadable or unusable): {skipped}",
        f"clusters: {clustering.count}; singletons: {int(np.sum(sizes == 1))}",
    ]


def _sizes(count: int, sizes: np.ndarray, cohesion: np.ndarray) -> list[str]:
    """How many clusters there are of each size, and the largest clusters with their cohesion."""
    buckets = Counter(
        "1" if s == 1 else "2-4" if s < 5 else "5-19" if s < 20 else "20-99" if s < 100 else "100+"
        for s in sizes
    )
    lines = [
        "",
        "## cluster sizes",
        "clusters by size: " + ", ".join(f"{b}: {buckets[b]}" for b in SIZE_BUCKETS if buckets[b]),
        "speaker        clips  cohesion (mean similarity to the cluster centre)",
    ]
    shown = min(count, LISTED_CLUSTERS)
    lines += [f"{_name(label):<14} {sizes[label]:>5}  {cohesion[label]:.3f}" for label in range(shown)]
    if count > shown:
        lines.append(f"... and {count - shown} smaller clusters (all of them are in the namelist)")
    return lines


def _singletons(singles: Sequence[Path]) -> list[str]:
    """The clips that are a cluster of their own."""
    lines = [
        "",
        f"## singletons: {len(singles)} (a clip unlike every other; check it, or lower the threshold)",
    ]
    lines += [f"  {path}" for path in singles[:LISTED_SINGLETONS]]
    if len(singles) > LISTED_SINGLETONS:
        lines.append(f"  ... and {len(singles) - LISTED_SINGLETONS} more")
    return lines


def _cohesive(
    ranked: Sequence[int],
    members: Mapping[int, list[int]],
    sizes: np.ndarray,
    cohesion: np.ndarray,
    per_clip: np.ndarray,
    paths: Sequence[Path],
    examples: int,
    extremes: int,
) -> list[str]:
    """The `extremes` most cohesive clusters (`ranked` is most cohesive first) with their closest clips,
    and the least cohesive with their farthest clips."""
    if not ranked:
        return ["", "## most and least cohesive clusters: none (every cluster is a single clip)"]
    lines = ["", "## most cohesive clusters (closest clips shown)"]
    for label in ranked[:extremes]:
        near = sorted(members[label], key=lambda i: -per_clip[i])[:examples]
        lines.append(f"{_name(label)}: {sizes[label]} clips, cohesion {cohesion[label]:.3f}")
        lines += [f"    {per_clip[i]:.3f}  {paths[i]}" for i in near]
    lines += ["", "## least cohesive clusters (clips farthest from the centre shown: listen to them)"]
    for label in list(reversed(ranked))[:extremes]:
        far = sorted(members[label], key=lambda i: per_clip[i])[:examples]
        lines.append(f"{_name(label)}: {sizes[label]} clips, cohesion {cohesion[label]:.3f}")
        lines += [f"    {per_clip[i]:.3f}  {paths[i]}" for i in far]
    return lines


def _suggested(silhouette: Mapping[int, float], count: int, clips: int) -> list[str]:
    """The cluster count the silhouette suggests, this run's, and the best counts."""
    lines = ["", "## suggested number of clusters (silhouette, cosine; higher is better)"]
    best = suggested_count(silhouette)
    if best is None:
        return [*lines, "too few clips to compare cluster counts"]
    lines.append(f"suggested n: {best} (silhouette {silhouette[best]:.3f}); try --n-clusters {best}")
    if count in silhouette:
        lines.append(f"this run: {count} clusters (silhouette {silhouette[count]:.3f})")
    top = sorted(silhouette.items(), key=lambda kv: -kv[1])[:10]
    lines.append("best counts: " + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(top)))
    if clips > SILHOUETTE_SAMPLE:
        lines.append(f"(computed on a fixed sample of {SILHOUETTE_SAMPLE} clips)")
    return lines

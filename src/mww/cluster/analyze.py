"""Speaker clustering of clips by voice: the analysis behind mww-cluster-analyze, its namelist and report.

Runs in the PyTorch environment (.venv-torch); the clustering itself is `mww.cluster.speaker_tree`, the
leakage audit `mww.cluster.leakage` (their names are re-exported here); torch, loaded only when needed,
runs the model (`mww.cluster.embeddings`).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mww.atomic import atomic_write_json, atomic_write_text
from mww.cluster.embeddings import (
    Embedder,
    EmbeddingCache,
    EmbeddingResult,
    SpeechBrainEmbedder,
    embed_files,
    is_local_source,
)
from mww.cluster.leakage import (
    ClusterError,
    ClusterLeak,
    LeakageReport,
    NearDuplicate,
    SplitInfo,
    leakage_audit,
    leakage_text,
    load_split_manifest,
)
from mww.cluster.speaker_tree import (
    BLOCK_ROWS,
    DENSE_LIMIT,
    KNN_NEIGHBOURS,
    LINKAGES,
    SILHOUETTE_SAMPLE,
    SIMILARITY_TOLERANCE,
    Clustering,
    ClusterTree,
    build_tree,
    candidate_counts,
    canonical_labels,
    cluster_embeddings,
    connect_components,
    cut_at_similarity,
    cut_into,
    knn_graph,
    member_similarity,
    silhouette_scores,
    unit_rows,
)
from mww.config.schema import MwwConfig
from mww.data.ingest import SPLIT_MANIFEST_NAME, discover

__all__ = [  # own names, and those of mww.cluster.speaker_tree and mww.cluster.leakage it re-exports
    "BLOCK_ROWS",
    "DATASETS",
    "DATASET_KINDS",
    "DENSE_LIMIT",
    "KNN_NEIGHBOURS",
    "LINKAGES",
    "MAX_LISTED",
    "SILHOUETTE_SAMPLE",
    "SIMILARITY_TOLERANCE",
    "AnalysisOptions",
    "AnalysisResult",
    "ClusterError",
    "ClusterLeak",
    "ClusterTree",
    "Clustering",
    "LeakageReport",
    "NearDuplicate",
    "SplitInfo",
    "analyze",
    "build_tree",
    "candidate_counts",
    "canonical_labels",
    "cluster_embeddings",
    "connect_components",
    "cut_at_similarity",
    "cut_into",
    "dataset_dirs",
    "knn_graph",
    "leakage_audit",
    "leakage_text",
    "load_split_manifest",
    "member_similarity",
    "namelist_data",
    "report_text",
    "select_files",
    "silhouette_scores",
    "speaker_names",
    "unit_rows",
]

DATASETS = ("positive", "negative", "hard_negative", "all")
DATASET_KINDS = {
    "positive": ("positive",),
    "negative": ("negative",),
    "hard_negative": ("hard_negative",),
    "all": ("positive", "negative", "hard_negative"),
}
_PATH_KEYS = {"positive": "positive_dir", "negative": "negative_dir", "hard_negative": "hard_negative_dir"}
MAX_LISTED = 20  # files listed in a message before "... and N more"


# --------------------------------------------------------------------------- outputs


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


def _listing(items: Sequence[Any], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


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
    labels = clustering.labels
    per_clip, cohesion = member_similarity(clustering.unit, labels)
    sizes = np.bincount(labels, minlength=clustering.count)
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels.tolist()):
        members[label].append(i)
    name = {label: f"speaker_{label + 1:04d}" for label in range(clustering.count)}
    cut = (
        f"exactly {clustering.n_clusters} clusters"
        if clustering.n_clusters is not None
        else f"similarity threshold {clustering.threshold} "
        "(clips join when their similarity is >= it under this linkage)"
    )
    lines = [
        f"# speaker clustering report: {dataset}",
        f"date: {meta['date']}",
        f"model: {meta['model']} (fingerprint {meta.get('model_fingerprint')})",
        f"method: {meta['method']}: {clustering.tree.describe()}",
        f"cut: {cut}",
        f"clips clustered: {len(paths)}; skipped (unreadable or unusable): {len(skipped)}",
        f"clusters: {clustering.count}; singletons: {int(np.sum(sizes == 1))}",
        "",
        "## cluster sizes",
    ]
    buckets = Counter(
        "1" if s == 1 else "2-4" if s < 5 else "5-19" if s < 20 else "20-99" if s < 100 else "100+"
        for s in sizes
    )
    lines.append(
        "clusters by size: "
        + ", ".join(f"{b}: {buckets[b]}" for b in ("1", "2-4", "5-19", "20-99", "100+") if buckets[b])
    )
    lines.append("speaker        clips  cohesion (mean similarity to the cluster centre)")
    shown = min(clustering.count, 100)
    for label in range(shown):
        lines.append(f"{name[label]:<14} {sizes[label]:>5}  {cohesion[label]:.3f}")
    if clustering.count > shown:
        lines.append(f"... and {clustering.count - shown} smaller clusters (all of them are in the namelist)")
    singles = [paths[members[label][0]] for label in range(clustering.count) if sizes[label] == 1]
    lines += [
        "",
        f"## singletons: {len(singles)} (a clip unlike every other; check it, or lower the threshold)",
    ]
    lines += [f"  {path}" for path in singles[:50]]
    if len(singles) > 50:
        lines.append(f"  ... and {len(singles) - 50} more")
    multi = [label for label in range(clustering.count) if sizes[label] > 1]
    ranked = sorted(multi, key=lambda label: (-cohesion[label], label))
    if not ranked:
        lines += ["", "## most and least cohesive clusters: none (every cluster is a single clip)"]
    if ranked:
        lines += ["", "## most cohesive clusters (closest clips shown)"]
    for label in ranked[:extremes]:
        near = sorted(members[label], key=lambda i: -per_clip[i])[:examples]
        lines.append(f"{name[label]}: {sizes[label]} clips, cohesion {cohesion[label]:.3f}")
        lines += [f"    {per_clip[i]:.3f}  {paths[i]}" for i in near]
    if ranked:
        lines += ["", "## least cohesive clusters (clips farthest from the centre shown: listen to them)"]
    for label in list(reversed(ranked))[:extremes]:
        far = sorted(members[label], key=lambda i: per_clip[i])[:examples]
        lines.append(f"{name[label]}: {sizes[label]} clips, cohesion {cohesion[label]:.3f}")
        lines += [f"    {per_clip[i]:.3f}  {paths[i]}" for i in far]
    lines += ["", "## suggested number of clusters (silhouette, cosine; higher is better)"]
    if silhouette:
        best = max(silhouette, key=lambda k: (silhouette[k], -k))
        lines.append(f"suggested n: {best} (silhouette {silhouette[best]:.3f}); try --n-clusters {best}")
        if clustering.count in silhouette:
            lines.append(
                f"this run: {clustering.count} clusters (silhouette {silhouette[clustering.count]:.3f})"
            )
        top = sorted(silhouette.items(), key=lambda kv: -kv[1])[:10]
        lines.append("best counts: " + ", ".join(f"{k}: {v:.3f}" for k, v in sorted(top)))
        if len(paths) > SILHOUETTE_SAMPLE:
            lines.append(f"(computed on a fixed sample of {SILHOUETTE_SAMPLE} clips)")
    else:
        lines.append("too few clips to compare cluster counts")
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


# --------------------------------------------------------------------------- the analysis


@dataclass
class AnalysisOptions:
    """Command-line choices of mww-cluster-analyze (None: from the config)."""

    dataset: str = "positive"
    n_clusters: int | None = None
    threshold: float | None = None
    method: str | None = None
    output_dir: Path = Path("./cluster_output")
    max_files: int | None = None
    model_source: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    fail_on_leak: bool = False
    progress: bool = True
    dense_limit: int = DENSE_LIMIT
    neighbours: int = KNN_NEIGHBOURS


@dataclass
class AnalysisResult:
    """What the analysis wrote and found; `exit_code` is 1 when --fail-on-leak found a leak."""

    namelist_path: Path
    report_path: Path
    leakage_path: Path | None
    clustering: Clustering
    embedded: EmbeddingResult
    leakage: LeakageReport | None
    suggested_n: int | None
    exit_code: int
    lines: list[str] = field(default_factory=list)


def dataset_dirs(config: MwwConfig, dataset: str) -> dict[str, Path]:
    """The folder of each kind the --dataset choice covers."""
    if dataset not in DATASET_KINDS:
        raise ClusterError(f"--dataset must be one of {', '.join(DATASETS)}, not '{dataset}'.")
    return {kind: Path(getattr(config.paths, _PATH_KEYS[kind])) for kind in DATASET_KINDS[dataset]}


def select_files(files: Sequence[Path], max_files: int | None, seed: int = 0) -> list[Path]:
    """All files, or a seeded random subset of `max_files` of them (in path order)."""
    if max_files is None or len(files) <= max_files:
        return list(files)
    pick = np.sort(np.random.default_rng(seed).choice(len(files), size=max_files, replace=False))
    return [files[i] for i in pick]


def _unusable_message(skipped: Sequence[tuple[Path, str]], where: str) -> str:
    listed = "; ".join(f"{path} ({reason})" for path, reason in skipped[:MAX_LISTED])
    more = f"; ... and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
    return (
        f"None of the {len(skipped)} audio file(s) under {where} could be used: {listed}{more}. Replace or "
        "re-export these files as 16-bit WAV (or FLAC/OGG/MP3) and run the analysis again."
    )


def analyze(config: MwwConfig, options: AnalysisOptions, embedder: Embedder | None = None) -> AnalysisResult:
    """Embed, cluster and report one dataset; writes the namelist, the report and the leakage audit.

    Nothing in the dataset is moved. Raises ClusterError / EmbeddingError on input it cannot use.
    """
    settings = config.speaker_clustering
    dirs = dataset_dirs(config, options.dataset)
    where = " and ".join(str(d) for d in dirs.values())
    found = sorted({p for folder in dirs.values() for p in discover(folder)})
    if not found:
        keys = ", ".join(f"paths.{_PATH_KEYS[k]}" for k in dirs)
        raise ClusterError(
            f"No audio files were found for --dataset {options.dataset} under {where} (from {keys} in "
            f"{config.source_of('paths')}). Put the clips there (.wav, .flac, .ogg or .mp3), point {keys} in "
            "your config at the folder that holds them, or choose another --dataset."
        )
    files = select_files(found, options.max_files)
    n_clusters, threshold = options.n_clusters, options.threshold
    if n_clusters is None and threshold is None:
        n_clusters = settings.n_clusters
        threshold = None if n_clusters is not None else settings.similarity_threshold
    if n_clusters is not None and n_clusters > len(files):
        raise ClusterError(
            f"{n_clusters} clusters were asked for (--n-clusters or speaker_clustering.n_clusters), but "
            f"--dataset {options.dataset} has only {len(files)} audio file(s) under {where}"
            + (f" (--max-files {options.max_files})" if len(files) < len(found) else "")
            + f". Ask for at most {len(files)} clusters, or use --threshold to let the similarity decide."
        )
    method = options.method or settings.method
    audit_wanted = options.fail_on_leak or settings.leakage_audit_enabled
    manifest_path = Path(config.paths.processed_dir) / SPLIT_MANIFEST_NAME
    if options.fail_on_leak and not manifest_path.is_file():
        raise ClusterError(
            f"--fail-on-leak needs the training split manifest {manifest_path}, which does not exist yet. "
            "Run `mww-prepare` (or mww-train) with this config first to write it, then run "
            "the "
            "analysis again."
        )
    manifest: dict[Path, SplitInfo] | None = None
    note = None
    if not audit_wanted:
        note = "disabled (speaker_clustering.leakage_audit_enabled is false; --fail-on-leak runs it anyway)"
    elif not manifest_path.is_file():
        note = (
            f"skipped: no training split manifest at {manifest_path} yet "
            "(run `mww-prepare` or "
            "mww-train once, then analyze again to audit the splits)"
        )
    else:
        try:
            manifest = load_split_manifest(manifest_path)
        except ClusterError as exc:
            if options.fail_on_leak:
                raise
            note = f"skipped: {exc}"
    model = options.model_source or settings.embedding_model
    if is_local_source(model):
        model = str(Path(model).expanduser().resolve())
    if embedder is None:
        embedder = SpeechBrainEmbedder(model, options.device)
    output_dir = Path(options.output_dir)
    cache = EmbeddingCache(output_dir / "embedding_cache", embedder.fingerprint)
    embedded = embed_files(files, embedder, cache, options.batch_size, options.progress)
    if not embedded.paths:
        raise ClusterError(_unusable_message(embedded.skipped, where))
    if n_clusters is not None and n_clusters > len(embedded.paths):
        raise ClusterError(
            f"{n_clusters} clusters were asked for, but only {len(embedded.paths)} of the {len(files)} files "
            f"under {where} could be used (skipped: "
            + _listing([f"{path} ({reason})" for path, reason in embedded.skipped])
            + f"). Ask for at most {len(embedded.paths)} clusters, or fix the skipped files."
        )
    clustering = cluster_embeddings(
        embedded.embeddings,
        linkage=LINKAGES[method],
        n_clusters=n_clusters,
        threshold=threshold,
        dense_limit=options.dense_limit,
        neighbours=options.neighbours,
    )
    speakers = speaker_names(clustering.labels)
    sizes = Counter(speakers)
    silhouette = silhouette_scores(clustering.tree, clustering.unit)
    suggested = max(silhouette, key=lambda k: (silhouette[k], -k)) if silhouette else None
    meta = {
        "model": model,
        "model_fingerprint": embedder.fingerprint,
        "method": method,
        "linkage": clustering.tree.linkage,
        "algorithm": clustering.tree.algorithm,
        "neighbours": clustering.tree.neighbours,
        "threshold": threshold,
        "n_clusters": n_clusters,
        "counts": {
            "files": len(embedded.paths),
            "clusters": clustering.count,
            "singletons": sum(1 for n in sizes.values() if n == 1),
            "skipped": len(embedded.skipped),
            "per_speaker": dict(sorted(sizes.items())),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": options.dataset,
        "dataset_dir": os.path.commonpath([str(d.resolve()) for d in dirs.values()]),
        "dataset_dirs": {kind: str(folder.resolve()) for kind, folder in dirs.items()},
        "paths": "absolute",
        "suggested_n_clusters": suggested,
    }
    leakage: LeakageReport | None = None
    leakage_path: Path | None = None
    if manifest is not None:
        leakage = leakage_audit(
            embedded.paths,
            clustering.unit,
            speakers,
            embedded.hashes,
            manifest,
            manifest_path,
            settings.near_duplicate_threshold,
        )
        leakage_path = atomic_write_text(
            output_dir / f"{options.dataset}_leakage_report.txt", leakage_text(leakage)
        )
    namelist_path = atomic_write_json(
        output_dir / f"{options.dataset}_namelist.json", namelist_data(embedded.paths, speakers, meta)
    )
    report_path = atomic_write_text(
        output_dir / f"{options.dataset}_cluster_report.txt",
        report_text(
            options.dataset, meta, clustering, embedded.paths, embedded.skipped, silhouette, leakage, note
        ),
    )
    lines = []
    if embedded.skipped:
        lines.append(f"skipped {len(embedded.skipped)} file(s) that could not be used:")
        lines += [f"  {path}: {reason}" for path, reason in embedded.skipped]
    lines.append(
        f"{len(embedded.paths)} clips: {embedded.computed} embedded, {embedded.reused} from the cache "
        f"({cache.folder})"
    )
    lines.append(
        f"{clustering.count} clusters ({meta['counts']['singletons']} singletons) by {method}: "
        f"{clustering.tree.describe()}"
    )
    if suggested is not None:
        lines.append(f"suggested number of clusters by silhouette: {suggested}")
    lines.append(f"namelist: {namelist_path}")
    lines.append(f"report: {report_path}")
    exit_code = 0
    if leakage is not None:
        lines.append(
            f"leakage audit: {len(leakage.cluster_leaks)} cluster(s) in more than one split, "
            f"{leakage.near_duplicate_total} near-duplicate pair(s) across splits ({leakage_path})"
        )
        if options.fail_on_leak and leakage.has_leak:
            exit_code = 1
    else:
        lines.append(f"leakage audit: {note}")
    lines.append(
        "nothing was moved; to sort the files into speaker folders: "
        f"mww-cluster-apply --namelist {namelist_path}"
    )
    return AnalysisResult(
        namelist_path, report_path, leakage_path, clustering, embedded, leakage, suggested, exit_code, lines
    )

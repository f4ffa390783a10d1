"""Speaker clustering of clips by voice: the analysis behind mww-cluster-analyze.

`analyze` finds the clips of a dataset, embeds them (`mww.cluster.embeddings`, cached by file content),
clusters the embeddings (`mww.cluster.speaker_tree`), audits the training splits for leakage when their
manifest is there (`mww.cluster.leakage`) and writes the namelist and the report
(`mww.cluster.report`). Runs in the PyTorch environment (.venv-torch); torch, loaded only when needed,
runs the model.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
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
    LeakageReport,
    SplitInfo,
    leakage_audit,
    leakage_text,
    load_split_manifest,
)
from mww.cluster.report import namelist_data, report_text, speaker_names, suggested_count
from mww.cluster.speaker_tree import (
    DENSE_LIMIT,
    KNN_NEIGHBOURS,
    LINKAGES,
    Clustering,
    cluster_embeddings,
    silhouette_scores,
)
from mww.config.schema import MwwConfig, SpeakerClusteringConfig
from mww.data.ingest import SPLIT_MANIFEST_NAME, discover

DATASETS = ("positive", "negative", "hard_negative", "all")
DATASET_KINDS = {
    "positive": ("positive",),
    "negative": ("negative",),
    "hard_negative": ("hard_negative",),
    "all": ("positive", "negative", "hard_negative"),
}
_PATH_KEYS = {"positive": "positive_dir", "negative": "negative_dir", "hard_negative": "hard_negative_dir"}
MAX_LISTED = 20  # files listed in a message before "... and N more"


def _listing(items: Sequence[Any], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


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


@dataclass(frozen=True)
class _Plan:
    """What one analysis runs on, and how: the options resolved against the config and the dataset."""

    dirs: dict[str, Path]  # the folder of each kind of clip analyzed
    where: str  # those folders, for messages
    files: list[Path]
    n_clusters: int | None
    threshold: float | None
    method: str
    model: str
    manifest_path: Path
    manifest: dict[Path, SplitInfo] | None  # None: no leakage audit, `note` says why
    note: str | None


def _plan(config: MwwConfig, options: AnalysisOptions) -> _Plan:
    """The files, cut, method, model and split manifest of this analysis; ClusterError where they cannot
    work together."""
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
    n_clusters, threshold = _cut(options, settings, files, len(found), where)
    manifest_path = Path(config.paths.processed_dir) / SPLIT_MANIFEST_NAME
    manifest, note = _split_manifest(manifest_path, options, settings)
    model = options.model_source or settings.embedding_model
    if is_local_source(model):
        model = str(Path(model).expanduser().resolve())
    return _Plan(
        dirs=dirs,
        where=where,
        files=files,
        n_clusters=n_clusters,
        threshold=threshold,
        method=options.method or settings.method,
        model=model,
        manifest_path=manifest_path,
        manifest=manifest,
        note=note,
    )


def _cut(
    options: AnalysisOptions, settings: SpeakerClusteringConfig, files: Sequence[Path], found: int, where: str
) -> tuple[int | None, float | None]:
    """(n_clusters, threshold): from the options, else from the config; one of them is None."""
    n_clusters, threshold = options.n_clusters, options.threshold
    if n_clusters is None and threshold is None:
        n_clusters = settings.n_clusters
        threshold = None if n_clusters is not None else settings.similarity_threshold
    if n_clusters is not None and n_clusters > len(files):
        raise ClusterError(
            f"{n_clusters} clusters were asked for (--n-clusters or speaker_clustering.n_clusters), but "
            f"--dataset {options.dataset} has only {len(files)} audio file(s) under {where}"
            + (f" (--max-files {options.max_files})" if len(files) < found else "")
            + f". Ask for at most {len(files)} clusters, or use --threshold to let the similarity decide."
        )
    return n_clusters, threshold


def _split_manifest(
    manifest_path: Path, options: AnalysisOptions, settings: SpeakerClusteringConfig
) -> tuple[dict[Path, SplitInfo] | None, str | None]:
    """(the training split manifest, None) when the leakage audit runs, else (None, why it does not)."""
    audit_wanted = options.fail_on_leak or settings.leakage_audit_enabled
    if options.fail_on_leak and not manifest_path.is_file():
        raise ClusterError(
            f"--fail-on-leak needs the training split manifest {manifest_path}, which does not exist yet. "
            "Run `mww-prepare` (or mww-train) with this config first to write it, then run the analysis "
            "again."
        )
    if not audit_wanted:
        return (
            None,
            "disabled (speaker_clustering.leakage_audit_enabled is false; --fail-on-leak runs it anyway)",
        )
    if not manifest_path.is_file():
        return None, (
            f"skipped: no training split manifest at {manifest_path} yet (run `mww-prepare` or mww-train "
            "once, then analyze again to audit the splits)"
        )
    try:
        return load_split_manifest(manifest_path), None
    except ClusterError as exc:
        if options.fail_on_leak:
            raise
        return None, f"skipped: {exc}"


def analyze(config: MwwConfig, options: AnalysisOptions, embedder: Embedder | None = None) -> AnalysisResult:
    """Embed, cluster and report one dataset; writes the namelist, the report and the leakage audit.

    Nothing in the dataset is moved. Raises ClusterError / EmbeddingError on input it cannot use.
    """
    plan = _plan(config, options)
    if embedder is None:
        embedder = SpeechBrainEmbedder(plan.model, options.device)
    output_dir = Path(options.output_dir)
    cache = EmbeddingCache(output_dir / "embedding_cache", embedder.fingerprint)
    embedded = embed_files(plan.files, embedder, cache, options.batch_size, options.progress)
    _check_usable(embedded, plan)
    clustering = cluster_embeddings(
        embedded.embeddings,
        linkage=LINKAGES[plan.method],
        n_clusters=plan.n_clusters,
        threshold=plan.threshold,
        dense_limit=options.dense_limit,
        neighbours=options.neighbours,
    )
    speakers = speaker_names(clustering.labels)
    silhouette = silhouette_scores(clustering.tree, clustering.unit)
    meta = _meta(plan, options.dataset, embedder.fingerprint, clustering, embedded, speakers, silhouette)
    leakage: LeakageReport | None = None
    leakage_path: Path | None = None
    if plan.manifest is not None:
        leakage = leakage_audit(
            embedded.paths,
            clustering.unit,
            speakers,
            embedded.hashes,
            plan.manifest,
            plan.manifest_path,
            config.speaker_clustering.near_duplicate_threshold,
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
            options.dataset,
            meta,
            clustering,
            embedded.paths,
            embedded.skipped,
            silhouette,
            leakage,
            plan.note,
        ),
    )
    leaked = options.fail_on_leak and leakage is not None and leakage.has_leak
    result = AnalysisResult(
        namelist_path=namelist_path,
        report_path=report_path,
        leakage_path=leakage_path,
        clustering=clustering,
        embedded=embedded,
        leakage=leakage,
        suggested_n=meta["suggested_n_clusters"],
        exit_code=1 if leaked else 0,
    )
    result.lines = _summary(result, meta, cache.folder, plan.note)
    return result


def _check_usable(embedded: EmbeddingResult, plan: _Plan) -> None:
    """ClusterError unless enough of the files could be embedded for the clusters asked for."""
    if not embedded.paths:
        raise ClusterError(_unusable_message(embedded.skipped, plan.where))
    if plan.n_clusters is not None and plan.n_clusters > len(embedded.paths):
        raise ClusterError(
            f"{plan.n_clusters} clusters were asked for, but only {len(embedded.paths)} of the "
            f"{len(plan.files)} files under {plan.where} could be used (skipped: "
            + _listing([f"{path} ({reason})" for path, reason in embedded.skipped])
            + f"). Ask for at most {len(embedded.paths)} clusters, or fix the skipped files."
        )


def _meta(
    plan: _Plan,
    dataset: str,
    fingerprint: str,
    clustering: Clustering,
    embedded: EmbeddingResult,
    speakers: Sequence[str],
    silhouette: dict[int, float],
) -> dict[str, Any]:
    """The namelist's `_meta`: how the clustering was made, what it found, and the dataset folders."""
    sizes = Counter(speakers)
    return {
        "model": plan.model,
        "model_fingerprint": fingerprint,
        "method": plan.method,
        "linkage": clustering.tree.linkage,
        "algorithm": clustering.tree.algorithm,
        "neighbours": clustering.tree.neighbours,
        "threshold": plan.threshold,
        "n_clusters": plan.n_clusters,
        "counts": {
            "files": len(embedded.paths),
            "clusters": clustering.count,
            "singletons": sum(1 for n in sizes.values() if n == 1),
            "skipped": len(embedded.skipped),
            "per_speaker": dict(sorted(sizes.items())),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset,
        "dataset_dir": os.path.commonpath([str(d.resolve()) for d in plan.dirs.values()]),
        "dataset_dirs": {kind: str(folder.resolve()) for kind, folder in plan.dirs.items()},
        "paths": "absolute",
        "suggested_n_clusters": suggested_count(silhouette),
    }


def _summary(result: AnalysisResult, meta: dict[str, Any], cache_folder: Path, note: str | None) -> list[str]:
    """The lines printed after the analysis: what was embedded and found, and where it was written."""
    embedded, clustering, leakage = result.embedded, result.clustering, result.leakage
    lines = []
    if embedded.skipped:
        lines.append(f"skipped {len(embedded.skipped)} file(s) that could not be used:")
        lines += [f"  {path}: {reason}" for path, reason in embedded.skipped]
    lines.append(
        f"{len(embedded.paths)} clips: {embedded.computed} embedded, {embedded.reused} from the cache "
        f"({cache_folder})"
    )
    lines.append(
        f"{clustering.count} clusters ({meta['counts']['singletons']} singletons) by {meta['method']}: "
        f"{clustering.tree.describe()}"
    )
    if result.suggested_n is not None:
        lines.append(f"suggested number of clusters by silhouette: {result.suggested_n}")
    lines.append(f"namelist: {result.namelist_path}")
    lines.append(f"report: {result.report_path}")
    if leakage is not None:
        lines.append(
            f"leakage audit: {len(leakage.cluster_leaks)} cluster(s) in more than one split, "
            f"{leakage.near_duplicate_total} near-duplicate pair(s) across splits ({result.leakage_path})"
        )
    else:
        lines.append(f"leakage audit: {note}")
    lines.append(
        "nothing was moved; to sort the files into speaker folders: "
        f"mww-cluster-apply --namelist {result.namelist_path}"
    )
    return lines

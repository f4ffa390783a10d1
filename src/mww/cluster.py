"""Speaker clustering of clips by voice, the namelist and report it writes, and the leakage audit.

Runs in the PyTorch environment (.venv-torch); this module itself needs numpy, scipy and
scikit-learn (for the silhouette); torch, loaded only when needed, speeds up the neighbour search
and runs the model (`mww.embeddings`).

Clustering is agglomerative on the cosine distance (1 - similarity) of ECAPA-TDNN embeddings.
The config's `speaker_clustering.method` picks the linkage:

  agglomerative  average linkage. Two groups of clips are joined when the MEAN similarity between
                 their clips is at least the threshold S, so every cluster is built from merges of
                 average similarity >= S, and any two clusters left apart have an average
                 similarity below S.
  threshold      single linkage. Two clips are in the same cluster when their similarity is at
                 least S, directly or through a chain of clips each at least S similar to the next;
                 any two clips in different clusters are less than S similar.

"At least" is checked with a tolerance of SIMILARITY_TOLERANCE (1e-6) for floating-point rounding.
With a number of clusters N instead of a threshold, the tree is cut into exactly N clusters.

Scale: up to `dense_limit` clips (DENSE_LIMIT, 8000) the tree is exact (SciPy on the condensed
distance matrix, about n²/2 float64 values). Above it no n×n matrix is ever built: a symmetric
k-nearest-neighbour graph (KNN_NEIGHBOURS = 15 neighbours by cosine similarity, computed
BLOCK_ROWS rows at a time) is made connected by linking each separate part to its closest part,
and only groups that are neighbours in that graph are candidates for a merge (memory O(n·k)).
The linkage values themselves stay exact: the mean similarity of all pairs of two groups is
sum(A)·sum(B) / (|A|·|B|) for unit vectors, so average linkage keeps one summed vector per
group; single linkage is the minimum spanning tree of the graph. What the graph can miss: two
groups that are not neighbours are never merged, even when their similarity would allow it.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from mww.atomic import atomic_write_json, atomic_write_text
from mww.config_schema import MwwConfig
from mww.embeddings import (
    Embedder,
    EmbeddingCache,
    EmbeddingResult,
    SpeechBrainEmbedder,
    embed_files,
    is_local_source,
)
from mww.ingest import SPLIT_MANIFEST_NAME, SPLITS, discover

DENSE_LIMIT = 8000
KNN_NEIGHBOURS = 15
BLOCK_ROWS = 256
SIMILARITY_TOLERANCE = 1e-6
SILHOUETTE_SAMPLE = 2000
LINKAGES = {"agglomerative": "average", "threshold": "single"}
DATASETS = ("positive", "negative", "hard_negative", "all")
DATASET_KINDS = {
    "positive": ("positive",),
    "negative": ("negative",),
    "hard_negative": ("hard_negative",),
    "all": ("positive", "negative", "hard_negative"),
}
_PATH_KEYS = {"positive": "positive_dir", "negative": "negative_dir", "hard_negative": "hard_negative_dir"}
MAX_LISTED = 20  # files listed in a message before "... and N more"


class ClusterError(Exception):
    """Input the analysis cannot use, explained in one paragraph (what, which file, what to do)."""


# --------------------------------------------------------------------------- clustering


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so a dot product is the cosine similarity."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@dataclass
class ClusterTree:
    """A full merge tree in SciPy's convention: merge i joins nodes merges[i] into node n + i.

    `heights` are the cosine distances (1 - similarity) of the merges, made monotone up the tree
    (a merge is never lower than the merges below it).
    """

    merges: np.ndarray
    heights: np.ndarray
    n: int
    linkage: str
    algorithm: str  # "exact" or "knn_graph"
    neighbours: int | None = None

    def describe(self) -> str:
        """One line: linkage and the algorithm used to build the tree."""
        if self.algorithm == "exact":
            return f"{self.linkage} linkage on cosine distance, exact (full distance matrix, {self.n} clips)"
        return (
            f"{self.linkage} linkage on cosine distance over a sparse {self.neighbours}-nearest-neighbour "
            f"graph ({self.n} clips; no n×n matrix)"
        )


def _monotone(merges: np.ndarray, heights: np.ndarray, n: int) -> np.ndarray:
    out = np.maximum(np.asarray(heights, dtype=np.float64), 0.0)
    for i, (a, b) in enumerate(merges):
        for child in (a, b):
            if child >= n and out[child - n] > out[i]:
                out[i] = out[child - n]
    return out


def _top_k(queries: np.ndarray, base: np.ndarray, k: int, block_rows: int, offset: int | None) -> np.ndarray:
    """Indices (len(queries), k) of the k most similar rows of `base`, in blocks of `block_rows`.

    `offset` is the index of queries[0] in `base` when the queries are rows of it (self excluded).
    """
    try:  # torch.topk is several times faster than a partition in NumPy; both give the same set
        import torch
    except ImportError:
        torch = None
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block_rows):
        sims = queries[start : start + block_rows] @ base.T
        if offset is not None:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + offset + start] = -np.inf
        if torch is not None:
            out[start : start + len(sims)] = torch.topk(torch.from_numpy(sims), k, dim=1).indices.numpy()
        elif k < sims.shape[1]:
            out[start : start + len(sims)] = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        else:
            out[start : start + len(sims)] = np.argsort(sims, axis=1)[:, -k:]
    return out


def knn_graph(unit: np.ndarray, neighbours: int = KNN_NEIGHBOURS, block_rows: int = BLOCK_ROWS) -> csr_matrix:
    """Symmetric 0/1 graph linking each clip to its `neighbours` most similar clips (blocked, O(n·k))."""
    n = len(unit)
    k = max(1, min(neighbours, n - 1))
    nbrs = _top_k(unit, unit, k, block_rows, offset=0)
    rows = np.repeat(np.arange(n), k)
    graph = coo_matrix((np.ones(rows.size, np.float32), (rows, nbrs.ravel())), shape=(n, n)).tocsr()
    return graph.maximum(graph.T).tocsr()


def connect_components(unit: np.ndarray, graph: csr_matrix, block_rows: int = BLOCK_ROWS) -> csr_matrix:
    """Add the fewest obvious links so the graph is connected: each separate part is joined to its
    closest part (by centroid), between the two clips closest to the other part's centroid."""
    while True:
        count, labels = connected_components(graph, directed=False)
        if count == 1:
            return graph
        sums = np.zeros((count, unit.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, unit)
        centroids = unit_rows(sums)
        nearest = _top_k(centroids, centroids, 1, block_rows, offset=0)[:, 0]
        order = np.argsort(labels, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(labels, minlength=count))[:-1])
        rows, cols = [], []
        for part, other in enumerate(nearest):
            mine, theirs = members[part], members[other]
            rows.append(mine[np.argmax(unit[mine] @ centroids[other])])
            cols.append(theirs[np.argmax(unit[theirs] @ centroids[part])])
        extra = coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=graph.shape).tocsr()
        graph = graph.maximum(extra).maximum(extra.T).tocsr()


def build_tree(
    embeddings: np.ndarray,
    linkage: str = "average",
    dense_limit: int = DENSE_LIMIT,
    neighbours: int = KNN_NEIGHBOURS,
    block_rows: int = BLOCK_ROWS,
) -> ClusterTree:
    """The full agglomerative merge tree of `embeddings` (cosine distance, `linkage` average or single).

    Exact up to `dense_limit` clips; above it, built on a sparse k-nearest-neighbour graph
    (see the module docstring).
    """
    if linkage not in ("average", "single"):
        raise ValueError(f"linkage must be 'average' or 'single', not {linkage!r}")
    unit = unit_rows(embeddings)
    n = len(unit)
    if n < 2:
        return ClusterTree(np.zeros((0, 2), np.int64), np.zeros(0), n, linkage, "exact")
    if n <= dense_limit:
        from scipy.cluster.hierarchy import linkage as scipy_linkage

        z = scipy_linkage(unit.astype(np.float64), method=linkage, metric="cosine")
        merges, heights = z[:, :2].astype(np.int64), z[:, 2]
        return ClusterTree(merges, _monotone(merges, heights, n), n, linkage, "exact")
    k = max(1, min(neighbours, n - 1))
    graph = connect_components(unit, knn_graph(unit, k, block_rows), block_rows)
    build = _graph_average_tree if linkage == "average" else _graph_single_tree
    merges, heights = build(unit, graph)
    return ClusterTree(merges, _monotone(merges, heights, n), n, linkage, "knn_graph", k)


def _edge_similarities(
    unit: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 32768
) -> np.ndarray:
    """Cosine similarity of each edge (rows[i], cols[i]), a chunk of edges at a time (bounded memory)."""
    out = np.empty(rows.size, dtype=np.float64)
    for start in range(0, rows.size, chunk):
        a = unit[rows[start : start + chunk]].astype(np.float64)
        b = unit[cols[start : start + chunk]].astype(np.float64)
        out[start : start + chunk] = np.einsum("ij,ij->i", a, b)
    return out


def _graph_single_tree(unit: np.ndarray, graph: csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Single linkage restricted to a connected graph: its minimum spanning tree, merged in order."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    coo = graph.tocoo()
    keep = coo.row < coo.col
    rows, cols = coo.row[keep], coo.col[keep]
    distances = 1.0 - _edge_similarities(unit, rows, cols)
    n = len(unit)
    # + 1.0 so that a zero distance (identical clips) stays an edge; the tree is the same.
    weights = coo_matrix((np.maximum(distances, 0.0) + 1.0, (rows, cols)), shape=(n, n))
    tree = minimum_spanning_tree(weights).tocoo()
    order = np.lexsort((tree.col, tree.row, tree.data))
    parent = list(range(2 * n - 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    merges, heights = [], []
    for edge in order:
        a, b = root(int(tree.row[edge])), root(int(tree.col[edge]))
        node = n + len(merges)
        parent[a] = parent[b] = node
        merges.append((min(a, b), max(a, b)))
        heights.append(float(tree.data[edge]) - 1.0)
    return np.asarray(merges, dtype=np.int64).reshape(-1, 2), np.asarray(heights)


def _graph_average_tree(unit: np.ndarray, graph: csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Average linkage restricted to a connected graph, with exact average similarities.

    Each group keeps the sum of its unit vectors: the mean similarity over all pairs of groups A and
    B is sum(A)·sum(B) / (|A|·|B|). Candidate merges are the graph's edges between groups, best first.
    """
    n = len(unit)
    sums: dict[int, np.ndarray] = {i: unit[i].astype(np.float64) for i in range(n)}
    sizes: dict[int, int] = dict.fromkeys(range(n), 1)
    adjacent: dict[int, set[int]] = {
        i: set(graph.indices[graph.indptr[i] : graph.indptr[i + 1]].tolist()) - {i} for i in range(n)
    }
    coo = graph.tocoo()
    keep = coo.row < coo.col
    rows, cols = coo.row[keep], coo.col[keep]
    distances = 1.0 - _edge_similarities(unit, rows, cols)
    heap = list(zip(distances.tolist(), rows.tolist(), cols.tolist(), strict=True))
    heapq.heapify(heap)
    compact_at = 2 * len(heap) + 1024
    merges, heights = [], []
    while heap and len(merges) < n - 1:
        if len(heap) > compact_at:  # drop candidates whose groups were merged since, to bound memory
            heap = [entry for entry in heap if entry[1] in sizes and entry[2] in sizes]
            heapq.heapify(heap)
            compact_at = 2 * len(heap) + 1024
        distance, a, b = heapq.heappop(heap)
        if a not in sizes or b not in sizes:
            continue  # one side was merged already: a stale candidate
        node = n + len(merges)
        merges.append((a, b))
        heights.append(distance)
        total = sums.pop(a) + sums.pop(b)
        size = sizes.pop(a) + sizes.pop(b)
        around = (adjacent.pop(a) | adjacent.pop(b)) - {a, b}
        for other in around:
            links = adjacent[other]
            links.discard(a)
            links.discard(b)
            links.add(node)
        sums[node], sizes[node], adjacent[node] = total, size, around
        if around:
            others = np.fromiter(around, dtype=np.int64, count=len(around))
            stacked = np.stack([sums[o] for o in others.tolist()])
            counts = np.array([sizes[o] for o in others.tolist()], dtype=np.float64)
            mean_sims = stacked @ total / (counts * size)
            for other, sim in zip(others.tolist(), mean_sims.tolist(), strict=True):
                heapq.heappush(heap, (1.0 - sim, other, node))
    return np.asarray(merges, dtype=np.int64).reshape(-1, 2), np.asarray(heights)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..k-1 with the largest cluster first (ties: the one whose first clip comes first)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int64)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    first = np.full(counts.size, labels.size)
    np.minimum.at(first, inverse, np.arange(labels.size))
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64)


def _labels_from(tree: ClusterTree, performed: np.ndarray) -> np.ndarray:
    n = tree.n
    if n == 0:
        return np.zeros(0, np.int64)
    kids = tree.merges[performed]
    parents = n + np.nonzero(performed)[0]
    rows = np.concatenate([kids[:, 0], kids[:, 1]])
    cols = np.concatenate([parents, parents])
    size = 2 * n - 1
    graph = coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(size, size))
    _, comp = connected_components(graph, directed=False)
    return canonical_labels(comp[:n])


def cut_into(tree: ClusterTree, n_clusters: int) -> np.ndarray:
    """Labels for exactly `n_clusters` clusters: the first n - n_clusters merges of the tree."""
    if not 1 <= n_clusters <= max(tree.n, 1):
        raise ValueError(f"n_clusters must be between 1 and {tree.n}, not {n_clusters}")
    return _labels_from(tree, np.arange(tree.n - 1) < tree.n - n_clusters)


def cut_at_similarity(tree: ClusterTree, threshold: float) -> np.ndarray:
    """Labels after every merge whose similarity (1 - height) is at least `threshold`."""
    return _labels_from(tree, tree.heights <= (1.0 - threshold) + SIMILARITY_TOLERANCE)


@dataclass
class Clustering:
    """Cluster labels (0 = largest) and how they were made."""

    labels: np.ndarray
    tree: ClusterTree
    unit: np.ndarray
    threshold: float | None
    n_clusters: int | None

    @property
    def count(self) -> int:
        """Number of clusters."""
        return int(self.labels.max()) + 1 if self.labels.size else 0


def cluster_embeddings(
    embeddings: np.ndarray,
    *,
    linkage: str = "average",
    n_clusters: int | None = None,
    threshold: float | None = None,
    dense_limit: int = DENSE_LIMIT,
    neighbours: int = KNN_NEIGHBOURS,
    block_rows: int = BLOCK_ROWS,
) -> Clustering:
    """Cluster embeddings into exactly `n_clusters`, or by a cosine-similarity `threshold` (one of them)."""
    if (n_clusters is None) == (threshold is None):
        raise ValueError("give exactly one of n_clusters and threshold")
    tree = build_tree(embeddings, linkage, dense_limit, neighbours, block_rows)
    labels = cut_into(tree, n_clusters) if n_clusters is not None else cut_at_similarity(tree, threshold)  # type: ignore[arg-type]
    return Clustering(labels, tree, unit_rows(embeddings), threshold, n_clusters)


def member_similarity(unit: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(similarity of each clip to its cluster's mean direction, mean of that per cluster)."""
    count = int(labels.max()) + 1 if labels.size else 0
    sums = np.zeros((count, unit.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, unit)
    centroids = unit_rows(sums)
    per_clip = np.einsum("ij,ij->i", unit, centroids[labels])
    sizes = np.bincount(labels, minlength=count)
    cohesion = np.bincount(labels, weights=per_clip, minlength=count) / np.maximum(sizes, 1)
    return per_clip, cohesion


def candidate_counts(n: int, upper: int) -> list[int]:
    """Cluster counts tried for the silhouette: 2..20, then about 20 more spaced up to `upper`."""
    upper = min(upper, n - 1)
    if upper < 2:
        return []
    counts = set(range(2, min(upper, 20) + 1))
    if upper > 20:
        counts |= {round(float(v)) for v in np.geomspace(21, upper, 20)}
    return sorted(counts)


def silhouette_scores(
    tree: ClusterTree, unit: np.ndarray, sample_size: int = SILHOUETTE_SAMPLE, seed: int = 0
) -> dict[int, float]:
    """Mean silhouette (cosine) of the tree cut into each candidate count, on a seeded sample of clips."""
    from sklearn.metrics import silhouette_score

    n = tree.n
    if n < 3:
        return {}
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, sample_size), replace=False))
    part = unit[sample]
    distances = np.clip(1.0 - part.astype(np.float64) @ part.T.astype(np.float64), 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    scores = {}
    for k in candidate_counts(n, max(20, sample.size // 4)):
        labels = cut_into(tree, k)[sample]
        if 2 <= np.unique(labels).size <= sample.size - 1:
            scores[k] = float(silhouette_score(distances, labels, metric="precomputed"))
    return scores


# --------------------------------------------------------------------------- leakage audit


@dataclass
class SplitInfo:
    """One file's entry in the training split manifest."""

    split: str
    speaker: str | None
    kind: str | None


def load_split_manifest(path: Path) -> dict[Path, SplitInfo]:
    """Resolved path → split entry, from `<processed_dir>/splits.json` as written by mww.ingest."""
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
            "written by `python -m mww.prepare` (and by mww-train); rerun that to rewrite it, or run the "
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
            "Run `python -m mww.prepare` (or mww-train) with this config first to write it, then run the "
            "analysis again."
        )
    manifest: dict[Path, SplitInfo] | None = None
    note = None
    if not audit_wanted:
        note = "disabled (speaker_clustering.leakage_audit_enabled is false; --fail-on-leak runs it anyway)"
    elif not manifest_path.is_file():
        note = (
            f"skipped: no training split manifest at {manifest_path} yet (run `python -m mww.prepare` or "
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

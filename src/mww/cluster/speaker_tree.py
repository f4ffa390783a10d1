"""Agglomerative clustering of speaker embeddings: the merge tree, its cuts, and their quality.

Runs in the PyTorch environment (.venv-torch); this module itself needs numpy, scipy and
scikit-learn (for the silhouette); torch, loaded only when needed, speeds up the neighbour search
and runs the model (`mww.cluster.embeddings`).

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
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

DENSE_LIMIT = 8000
KNN_NEIGHBOURS = 15
BLOCK_ROWS = 256
SIMILARITY_TOLERANCE = 1e-6
SILHOUETTE_SAMPLE = 2000
LINKAGES = {"agglomerative": "average", "threshold": "single"}


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

"""Agglomerative clustering of speaker embeddings (`mww.cluster.speaker_tree`): threshold and count semantics,
the sparse path for many clips, and the silhouette."""

import numpy as np
import pytest

from mww.cluster.speaker_tree import (
    build_tree,
    cluster_embeddings,
    connect_components,
    cut_at_similarity,
    cut_into,
    knn_graph,
    silhouette_scores,
    unit_rows,
)


def groups(n_groups: int, per_group: int, dim: int = 16, spread: float = 0.15, seed: int = 0):
    """Embeddings scattered around `n_groups` random directions, and the true group of each."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    truth = np.repeat(np.arange(n_groups), per_group)
    x = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True)
    return (x + spread * rng.standard_normal(x.shape) / np.sqrt(dim)).astype(np.float32), truth


def purity(labels, truth) -> float:
    total = 0
    for label in np.unique(labels):
        total += np.bincount(truth[labels == label]).max()
    return total / len(truth)


def angles(*degrees):
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_threshold_is_a_similarity_and_clips_join_at_or_above_it():
    x = angles(0, 30, 75)  # similarities: AB cos30 = 0.866, BC cos45 = 0.707, AC cos75 = 0.259
    sims = unit_rows(x).astype(np.float64) @ unit_rows(x).T.astype(np.float64)
    ab, bc = sims[0, 1], sims[1, 2]
    for linkage in ("average", "single"):
        tree = build_tree(x, linkage)
        assert list(cut_at_similarity(tree, ab)) == [0, 0, 1]  # exactly at the threshold: joined
        assert list(cut_at_similarity(tree, ab + 1e-4)) == [0, 1, 2]  # just above it: apart
    # single linkage: a chain of clips each >= S is one cluster, though A and C are far apart
    assert list(cut_at_similarity(build_tree(x, "single"), bc)) == [0, 0, 0]
    # average linkage: {A,B} and C join only when their MEAN similarity (0.483) reaches S
    avg = (sims[0, 2] + sims[1, 2]) / 2
    assert list(cut_at_similarity(build_tree(x, "average"), bc)) == [0, 0, 1]
    assert list(cut_at_similarity(build_tree(x, "average"), avg)) == [0, 0, 0]
    assert list(cut_at_similarity(build_tree(x, "average"), avg + 1e-4)) == [0, 0, 1]


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.85])
def test_threshold_property_on_random_embeddings(threshold):
    x, _ = groups(6, 12, spread=0.8, seed=3)
    unit = unit_rows(x).astype(np.float64)
    sims = unit @ unit.T
    single = cluster_embeddings(x, linkage="single", threshold=threshold).labels
    i, j = np.nonzero(np.triu(sims >= threshold, 1))
    assert np.all(single[i] == single[j])  # every pair at least S similar is together
    for label in np.unique(single):  # and each cluster is held together by such pairs
        members = np.nonzero(single == label)[0]
        assert members.size == 1 or np.all(
            np.max(sims[np.ix_(members, members)] - 2 * np.eye(members.size), 1) >= threshold - 1e-6
        )
    average = cluster_embeddings(x, linkage="average", threshold=threshold).labels
    k = average.max() + 1
    for a in range(k):
        for b in range(a + 1, k):  # clusters left apart are, on average, less than S similar
            assert sims[np.ix_(average == a, average == b)].mean() < threshold


@pytest.mark.parametrize("dense_limit", [10_000, 50])
def test_n_clusters_gives_exactly_n(dense_limit):
    x, _ = groups(5, 30, spread=0.6, seed=1)
    for n in (1, 2, 5, 17, 150):
        for linkage in ("average", "single"):
            result = cluster_embeddings(
                x, linkage=linkage, n_clusters=n, dense_limit=dense_limit, neighbours=5
            )
            assert result.count == n and len(np.unique(result.labels)) == n
    with pytest.raises(ValueError):
        cluster_embeddings(x, n_clusters=151)


def test_large_n_path_uses_a_sparse_graph_and_finds_the_groups(monkeypatch):
    import scipy.cluster.hierarchy
    import scipy.spatial.distance

    import mww.cluster.speaker_tree

    def forbidden(*args, **kwargs):
        raise AssertionError("the dense path was used")

    monkeypatch.setattr(scipy.cluster.hierarchy, "linkage", forbidden)
    monkeypatch.setattr(scipy.spatial.distance, "pdist", forbidden)
    seen = {}
    original = mww.cluster.speaker_tree.knn_graph

    def spy(unit, neighbours, block_rows):
        graph = original(unit, neighbours, block_rows)
        seen["edges"], seen["block_rows"] = graph.nnz, block_rows
        return graph

    monkeypatch.setattr(mww.cluster.speaker_tree, "knn_graph", spy)
    x, truth = groups(8, 75, spread=0.35, seed=4)
    for linkage in ("average", "single"):
        result = cluster_embeddings(
            x, linkage=linkage, n_clusters=8, dense_limit=100, neighbours=10, block_rows=64
        )
        assert result.tree.algorithm == "knn_graph" and "no n×n" in result.tree.describe()
        assert seen == {"edges": seen["edges"], "block_rows": 64} and seen["edges"] <= 2 * 10 * len(x)
        assert purity(result.labels, truth) >= 0.97
        by_threshold = cluster_embeddings(x, linkage=linkage, threshold=0.7, dense_limit=100, neighbours=10)
        assert by_threshold.count == 8 and purity(by_threshold.labels, truth) >= 0.97


def test_large_n_average_linkage_uses_exact_group_averages():
    x, _ = groups(6, 40, spread=0.8, seed=6)
    unit = unit_rows(x).astype(np.float64)
    sims = unit @ unit.T
    for threshold in (0.3, 0.5):
        labels = cluster_embeddings(x, threshold=threshold, dense_limit=50, neighbours=8).labels
        exact = cluster_embeddings(x, threshold=threshold).labels
        assert purity(labels, exact) >= 0.9
        for label in np.unique(labels):  # every cluster was built from merges of mean similarity >= S
            inside = sims[np.ix_(labels == label, labels == label)]
            assert inside.mean() >= threshold - 1e-6  # (all pairs, self-pairs included)


def test_separate_parts_of_the_neighbour_graph_are_joined():
    x, truth = groups(3, 20, spread=0.05, seed=2)
    graph = knn_graph(unit_rows(x), neighbours=3, block_rows=7)
    from scipy.sparse.csgraph import connected_components

    assert connected_components(graph, directed=False)[0] == 3
    joined = connect_components(unit_rows(x), graph, block_rows=7)
    assert connected_components(joined, directed=False)[0] == 1
    tree = build_tree(x, "average", dense_limit=10, neighbours=3, block_rows=7)
    assert purity(cut_into(tree, 3), truth) == 1.0


def test_silhouette_suggests_the_true_number_of_groups():
    x, _ = groups(4, 25, spread=0.3, seed=5)
    tree = build_tree(x, "average")
    scores = silhouette_scores(tree, unit_rows(x))
    assert max(scores, key=scores.get) == 4


# --------------------------------------------------------------------------- leakage audit

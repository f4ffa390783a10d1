"""Data preparation: ingestion, splits and cached features, the first stage of training.

Run on its own with `mww-prepare --config NAME|PATH [--override PATH]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mww.config.schema import MwwConfig
from mww.data.feature_store import FeatureStore
from mww.data.featurize import FeaturizeResult, featurize_files, open_feature_store
from mww.data.ingest import IngestError, IngestResult, ingest, load_namelist

FEATURIZED_KINDS = ("positive", "negative", "hard_negative", "ambient", "false_wake")


@dataclass
class PreparedData:
    """What later stages need: the clips with their splits, and where each clip's features are."""

    ingest: IngestResult
    store: FeatureStore
    features: FeaturizeResult
    seconds: float


def speaker_namelist(config: MwwConfig) -> dict[Path, str] | None:
    """The speakers of `speaker_clustering.namelist` when clustering is enabled (files are not moved)."""
    clustering = config.speaker_clustering
    if not clustering.enabled:
        return None
    if clustering.namelist is None:
        raise IngestError(
            "speaker_clustering.enabled is true but speaker_clustering.namelist is not set. Run "
            "mww-cluster-analyze (PyTorch environment) and set speaker_clustering.namelist to the "
            "positive_namelist.json it writes, or set speaker_clustering.enabled to false."
        )
    return load_namelist(clustering.namelist, config.paths.positive_dir)


def prepare_data(config: MwwConfig, progress: bool = True) -> PreparedData:
    """Ingest and split the dataset of `config`, then featurize every clip that needs it."""
    start = time.perf_counter()
    workers = config.performance.resolved_num_workers()
    result = ingest(config, namelist=speaker_namelist(config), num_workers=workers, progress=progress)
    store = open_feature_store(config.paths.processed_dir)
    paths = [c.path for c in result.clips if c.kind in FEATURIZED_KINDS]
    features = featurize_files(paths, store, num_workers=workers, progress=progress)
    return PreparedData(result, store, features, time.perf_counter() - start)

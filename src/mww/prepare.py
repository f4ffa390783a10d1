"""Data preparation: ingestion, splits and cached features, the first stage of training.

Run on its own with `python -m mww.prepare --config NAME|PATH [--override PATH]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mww.config_schema import MwwConfig
from mww.feature_store import FeatureStore, FeatureStoreError
from mww.featurize import FeaturizeResult, featurize_files, open_feature_store
from mww.ingest import IngestError, IngestResult, ingest, load_namelist, summary_lines

FEATURIZED_KINDS = ("positive", "negative", "hard_negative", "ambient")


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


def main(argv: list[str] | None = None) -> int:
    """CLI: prepare the data of a config and print what was found."""
    from mww.config import ConfigError, add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(prog="python -m mww.prepare", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        prepared = prepare_data(config, progress=not args.quiet)
    except (ConfigError, IngestError, FeatureStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(prepared.ingest):
        print(line)
    f = prepared.features
    print(f"features: {f.computed} computed, {f.reused} reused from cache, {len(f.failed)} failed")
    print(f"split manifest: {prepared.ingest.manifest_path}")
    print(f"feature store: {Path(prepared.store.root)} ({prepared.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""mww-prepare: ingest the dataset folders, make the speaker-disjoint splits and cache the device features.

mww-train runs this stage itself; on its own it shows what was found (and what was skipped, and why)
before any training starts. Exit status: 0 when the data is ready, 2 on bad input (the reason is
printed as one paragraph).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mww.cli import run_command
from mww.config.load import add_config_arguments, config_from_args

PROG = "mww-prepare"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _prepare(args: argparse.Namespace) -> int:
    from mww.data import feature_sets
    from mww.data.ingest import summary_lines
    from mww.data.prepare import prepare_data

    config = config_from_args(args)
    sets = feature_sets.open_feature_sets(config)
    prepared = prepare_data(config, progress=not args.quiet)
    for line in [*summary_lines(prepared.ingest), *feature_sets.summary_lines(sets)]:
        print(line)
    f = prepared.features
    print(f"features: {f.computed} computed, {f.reused} reused from cache, {len(f.failed)} failed")
    print(f"split manifest: {prepared.ingest.manifest_path}")
    print(f"feature store: {Path(prepared.store.root)} ({prepared.seconds:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Prepare the data of a config and print what was found."""
    return run_command(PROG, _parser(), _prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())

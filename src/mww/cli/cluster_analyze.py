"""mww-cluster-analyze: group clips by voice with SpeechBrain's ECAPA-TDNN speaker model.

Embeds every clip of a dataset (batched, cached by file content in <output-dir>/embedding_cache),
clusters the embeddings and writes <output-dir>/{dataset}_namelist.json (file → speaker_NNNN) and
{dataset}_cluster_report.txt. With the training split manifest (<processed_dir>/splits.json) it
also audits the splits for leakage: one voice in several splits, or near-duplicate clips across
splits ({dataset}_leakage_report.txt). Nothing is moved; mww-cluster-apply does that.

--threshold S is a cosine SIMILARITY in [-1, 1]: clips join while their similarity is at least S
under the linkage of speaker_clustering.method (agglomerative: average similarity between two
groups; threshold: single linkage, a chain of clips each at least S similar to the next).
--n-clusters N cuts the same tree into exactly N clusters.

Exit status: 0 done, 1 a leak was found with --fail-on-leak, 2 input that cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mww.cli import checked, run_command
from mww.config.load import add_config_arguments, config_from_args

_positive_int = checked(int, "a whole number", lambda v: v >= 1, "must be at least 1, not {value}")
_similarity = checked(
    float, "a number", lambda v: -1.0 <= v <= 1.0, "a cosine similarity is between -1 and 1, not {value}"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mww-cluster-analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, required=True)
    parser.add_argument(
        "--dataset",
        choices=("positive", "negative", "hard_negative", "all"),
        default="positive",
        help="which clips to cluster; 'all' clusters the three together, so one voice gets one id "
        "(default positive)",
    )
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument(
        "--n-clusters", type=_positive_int, metavar="N", help="exactly N clusters (default: from the config)"
    )
    cut.add_argument(
        "--threshold",
        type=_similarity,
        metavar="S",
        help="cosine similarity at or above which clips join "
        "(default: speaker_clustering.similarity_threshold)",
    )
    parser.add_argument(
        "--method",
        choices=("agglomerative", "threshold"),
        help="agglomerative (average linkage) or threshold (single linkage); "
        "default speaker_clustering.method",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("./cluster_output"), help="default ./cluster_output"
    )
    parser.add_argument(
        "--max-files", type=_positive_int, metavar="N", help="cluster a fixed random sample of N files"
    )
    parser.add_argument(
        "--model-source",
        metavar="ID_OR_DIR",
        help="hub id or local SpeechBrain model folder (default: speaker_clustering.embedding_model)",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="clips per forward pass (32)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (cpu)")
    parser.add_argument(
        "--fail-on-leak",
        action="store_true",
        help="exit 1 when the leakage audit finds a voice or a near-duplicate clip in two splits",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _analyze(args: argparse.Namespace) -> int:
    from mww.cluster.analyze import AnalysisOptions, analyze

    config = config_from_args(args)
    options = AnalysisOptions(
        dataset=args.dataset,
        n_clusters=args.n_clusters,
        threshold=args.threshold,
        method=args.method,
        output_dir=args.output_dir,
        max_files=args.max_files,
        model_source=args.model_source,
        batch_size=args.batch_size,
        device=args.device,
        fail_on_leak=args.fail_on_leak,
        progress=not args.quiet,
    )
    result = analyze(config, options)
    for line in result.lines:
        print(line)
    if result.exit_code:
        print("mww-cluster-analyze: leakage found (--fail-on-leak)", file=sys.stderr)
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    """Parse flags, analyze the speakers of a dataset folder, print the report."""
    return run_command(
        "mww-cluster-analyze",
        _parser(),
        _analyze,
        argv,
        interrupted=lambda _: "interrupted; embeddings computed so far are cached.",
    )


if __name__ == "__main__":
    raise SystemExit(main())

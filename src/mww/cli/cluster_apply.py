"""mww-cluster-apply: move clips into speaker_NNNN folders from a namelist, or undo that.

A backup manifest is written to --output-dir before the first file moves; `--undo MANIFEST`
puts every file back, also after an apply that was interrupted. Names that are taken are never
overwritten (the file gets a _2, _3, ... suffix). --dry-run prints the plan and touches nothing.

Exit status: 0 done, 1 the apply stopped midway (undo with the printed manifest), 2 input that
cannot be used (nothing moved).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mww.cli import run_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mww-cluster-apply", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--namelist", type=Path, metavar="FILE", help="a {dataset}_namelist.json to apply")
    mode.add_argument("--namelist-dir", type=Path, metavar="DIR", help="apply every *_namelist.json in DIR")
    mode.add_argument("--undo", type=Path, metavar="MANIFEST", help="restore the files of a backup manifest")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("./cluster_output"),
        help="where the backup manifest is written (default ./cluster_output)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; move nothing, write nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _undo(args: argparse.Namespace) -> int:
    from mww.cluster.apply import undo

    result = undo(args.undo, dry_run=args.dry_run, progress=not args.quiet)
    if result.already_undone:
        print(f"{result.manifest_path} was already undone; nothing to do.")
        return 0
    verb = "would restore" if args.dry_run else "restored"
    for target, source in result.restored:
        if args.dry_run:
            print(f"{target} -> {source}")
    print(
        f"{verb} {len(result.restored)} file(s); {result.untouched} already in place"
        + (
            f"; {len(result.unlinked)} leftover link(s) of an interrupted move removed"
            if result.unlinked
            else ""
        )
        + (f"; removed {len(result.removed_dirs)} empty speaker folder(s)" if result.removed_dirs else "")
    )
    return 0


def _apply(args: argparse.Namespace) -> int:
    from mww.cluster.apply import apply_plan, namelists_in, new_manifest_path, plan_moves

    namelists = [args.namelist] if args.namelist is not None else namelists_in(args.namelist_dir)
    plan = plan_moves(namelists, hash_files=not args.dry_run, progress=not args.quiet)
    if args.dry_run:
        for move in plan.moves:
            print(f"{move.source} -> {move.target}" + ("  (name taken: renamed)" if move.renamed else ""))
        print(
            f"dry run: would move {len(plan.moves)} file(s) into speaker folders "
            f"({len(plan.created_dirs)} new folder(s)); {len(plan.in_place)} already in place. "
            "Nothing was touched."
        )
        return 0
    if not plan.moves:
        print(f"nothing to move: all {len(plan.in_place)} file(s) are already in their speaker folders.")
        return 0
    manifest = new_manifest_path(args.output_dir)
    try:
        result = apply_plan(plan, manifest, progress=not args.quiet)
    except OSError as exc:
        print(
            f"mww-cluster-apply: error: the apply stopped midway ({exc}). Every move so far is recorded in "
            f"{manifest}; fix the cause and run `mww-cluster-apply --undo {manifest}` to put the files back.",
            file=sys.stderr,
        )
        return 1
    renamed = sum(1 for move in plan.moves if move.renamed)
    print(
        f"moved {result.moved} file(s) into speaker folders ({len(plan.in_place)} already in place"
        + (f", {renamed} renamed because the name was taken" if renamed else "")
        + ")."
    )
    print(f"backup manifest: {manifest}")
    print(f"undo: mww-cluster-apply --undo {manifest}")
    return 0


def _interrupted(args: argparse.Namespace) -> str:
    where = "the backup manifest in " + str(args.output_dir) if args.undo is None else str(args.undo)
    return f"interrupted; every completed move is recorded in {where}."


def main(argv: list[str] | None = None) -> int:
    """Parse flags, apply a namelist (or undo a manifest), print what happened."""
    return run_command(
        "mww-cluster-apply",
        _parser(),
        lambda args: _undo(args) if args.undo is not None else _apply(args),
        argv,
        interrupted=_interrupted,
    )


if __name__ == "__main__":
    raise SystemExit(main())

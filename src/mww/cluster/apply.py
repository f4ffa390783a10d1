"""Sorting clips into speaker folders from a namelist, with a backup manifest that undoes it.

Where a file goes: `<dataset folder>/<speaker>/<file name>`, where the dataset folder is the one
of the namelist's `_meta.dataset_dirs` (written by mww-cluster-analyze) that holds the file, so
the speaker folder is the first folder under positive/ (or negative/, hard_negative/) and
ingestion reads it as the speaker. A file outside those folders (or from a namelist without
`_meta.dataset_dirs`) goes into a speaker folder beside it (next to its current folder when
that is already a `speaker_NNNN` folder). Mapping keys are absolute paths, or paths relative
to `_meta.dataset_dir`.

Safety:
  * nothing is moved until every file of the namelist has been found and hashed (SHA-256);
  * the backup manifest (`<output-dir>/apply_manifest_<time>.json`) is written atomically BEFORE
    the first move; each move is then appended to `<manifest>.progress` as it happens, and the
    manifest is rewritten atomically with each move's status every few seconds and at the end;
  * a name that is taken is never overwritten: the file gets `<stem>_2<ext>`, `_3`, ... instead
    (moves use a hard link then unlink, which fails rather than replacing a file);
  * `--undo MANIFEST` trusts the disk, not the status fields: every file found at its new place
    with the recorded hash is moved back, so an apply that was killed midway undoes cleanly. If
    any file is neither at its new nor at its old place, or its content changed, nothing is
    touched and the files are listed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mww.atomic import atomic_write_json
from mww.cluster.embeddings import file_sha256
from mww.errors import MwwError

MANIFEST_VERSION = 1
MANIFEST_KIND = "mww-cluster-apply backup manifest"
NAMELIST_SUFFIX = "_namelist.json"
SPEAKER_FOLDER = re.compile(r"speaker_\d+")
MANIFEST_REWRITE_SECONDS = 2.0
PROGRESS_FSYNC_EVERY = 100
MAX_LISTED = 20


class ApplyError(MwwError):
    """A namelist or manifest that cannot be applied safely, explained in one paragraph."""


@dataclass
class Move:
    """One planned move."""

    source: Path
    target: Path
    speaker: str
    sha256: str = ""
    size: int = 0
    status: str = "planned"  # planned, moved, restored
    renamed: bool = False  # the natural name was taken

    def to_json(self) -> dict[str, Any]:
        """Manifest entry."""
        return {
            "from": str(self.source),
            "to": str(self.target),
            "speaker": self.speaker,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "renamed": self.renamed,
        }


@dataclass
class Plan:
    """What an apply would do."""

    namelists: list[Path]
    moves: list[Move]
    in_place: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)


def _listing(items: Sequence[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:MAX_LISTED])
    return shown + (f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _bad_speaker(name: str) -> bool:
    return (
        not name.strip()
        or name in (".", "..")
        or name.startswith(".")
        or any(ch in name for ch in '/\\:*?"<>|\0')
    )


def read_namelist(path: str | os.PathLike[str]) -> tuple[dict[Path, str], dict[str, Any]]:
    """(resolved file path → speaker, _meta) from a namelist written by mww-cluster-analyze."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("mappings"), dict):
            raise ValueError('it has no "mappings" object')
        meta = data.get("_meta") or {}
        if not isinstance(meta, dict):
            raise ValueError('"_meta" is not an object')
    except (OSError, ValueError) as exc:
        raise ApplyError(
            f"The namelist {source} could not be used ({exc}). It must be JSON of the form "
            '{"_meta": {...}, "mappings": {"<file path>": "speaker_0001", ...}} as written by '
            "mww-cluster-analyze; rerun the analysis or fix the file. Nothing was moved."
        ) from None
    base = meta.get("dataset_dir")
    out: dict[Path, str] = {}
    for key, speaker in data["mappings"].items():
        if not isinstance(speaker, str) or _bad_speaker(speaker):
            raise ApplyError(
                f"The namelist {source} maps {key} to {speaker!r}, which cannot be a folder name (it must be "
                "non-empty text without /, \\, or a leading dot, like speaker_0001). Fix that entry or rerun "
                "mww-cluster-analyze. Nothing was moved."
            )
        file = Path(key).expanduser()
        if not file.is_absolute():
            if not base:
                raise ApplyError(
                    f"The namelist {source} lists the relative path {key}, but its _meta has no "
                    "dataset_dir to resolve it against. Write absolute paths (as mww-cluster-analyze does) "
                    'or add "dataset_dir": "<folder>" to _meta. Nothing was moved.'
                )
            file = Path(base) / file
        out[Path(os.path.abspath(file))] = speaker
    return out, meta


def namelists_in(folder: str | os.PathLike[str]) -> list[Path]:
    """Every `*_namelist.json` in `folder`, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ApplyError(
            f"--namelist-dir {root} is not a folder. Give the folder mww-cluster-analyze wrote its "
            "*_namelist.json files to (--output-dir, ./cluster_output by default)."
        )
    found = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(NAMELIST_SUFFIX))
    if not found:
        raise ApplyError(
            f"No *{NAMELIST_SUFFIX} file is in {root}. Run mww-cluster-analyze with --output-dir {root} "
            "first, or give one namelist with --namelist FILE."
        )
    return found


def _root_for(file: Path, roots: Sequence[Path]) -> Path:
    holding = [root for root in roots if file.is_relative_to(root) and file != root]
    if holding:
        return max(holding, key=lambda root: len(root.parts))
    parent = file.parent
    return parent.parent if SPEAKER_FOLDER.fullmatch(parent.name) else parent


def _free_name(folder: Path, name: str, taken: set[Path]) -> tuple[Path, bool]:
    candidate = folder / name
    if candidate not in taken and not os.path.lexists(candidate):
        return candidate, False
    stem, suffix = os.path.splitext(name)
    number = 2
    while True:
        candidate = folder / f"{stem}_{number}{suffix}"
        if candidate not in taken and not os.path.lexists(candidate):
            return candidate, True
        number += 1


def plan_moves(namelists: Sequence[Path], hash_files: bool = True, progress: bool = False) -> Plan:
    """Check every namelist entry and decide each file's new path; raises ApplyError before any move."""
    mapping: dict[Path, tuple[str, Path]] = {}
    roots: list[Path] = []
    conflicts = []
    for namelist in namelists:
        entries, meta = read_namelist(namelist)
        dirs = meta.get("dataset_dirs") or {}
        if isinstance(dirs, dict):
            for folder in (Path(d).expanduser() for d in dirs.values() if isinstance(d, str)):
                roots += [Path(os.path.abspath(folder)), folder.resolve()]
        for file, speaker in entries.items():
            if file in mapping and mapping[file][0] != speaker:
                conflicts.append(
                    f"{file} ({mapping[file][0]} in {mapping[file][1]}, {speaker} in {namelist})"
                )
            mapping.setdefault(file, (speaker, namelist))
    if conflicts:
        raise ApplyError(
            f"The namelists give different speakers to {len(conflicts)} file(s): {_listing(conflicts)}. "
            "Apply one namelist at a time (--namelist FILE), or remove the stale namelist from the folder. "
            "Nothing was moved."
        )
    plan = Plan(namelists=list(namelists), moves=[])
    missing = []
    taken: set[Path] = set()
    new_dirs: set[Path] = set()
    for file in sorted(mapping):
        speaker = mapping[file][0]
        folder = _root_for(file, roots) / speaker
        natural = folder / file.name
        if file == natural:
            plan.in_place.append(file)
            continue
        if not file.is_file():
            if natural.is_file():  # applied before: the file already sits in its speaker folder
                plan.in_place.append(natural)
            else:
                missing.append(file)
            continue
        target, renamed = _free_name(folder, file.name, taken)
        taken.add(target)
        plan.moves.append(Move(file, target, speaker, renamed=renamed))
        if not folder.exists():
            new_dirs.add(folder)
    if missing:
        raise ApplyError(
            f"{len(missing)} of the {len(mapping)} file(s) in {_listing(plan.namelists)} do not exist: "
            f"{_listing(missing)}. The namelist no longer matches the dataset (files moved, renamed or "
            "deleted since the analysis). Rerun mww-cluster-analyze to get a namelist for the current "
            "files. Nothing was moved."
        )
    plan.created_dirs = sorted(new_dirs)
    if hash_files:
        for move in tqdm(plan.moves, desc="hashing", unit="file", disable=not progress):
            try:
                move.sha256 = file_sha256(move.source)
                move.size = move.source.stat().st_size
            except OSError as exc:
                raise ApplyError(
                    f"{move.source} could not be read ({exc.strerror or exc}); it must be readable to be "
                    "moved safely. Fix its permissions and run again. Nothing was moved."
                ) from None
    return plan


def _manifest_data(plan: Plan, created: str, completed: bool, undone: str | None = None) -> dict[str, Any]:
    return {
        "kind": MANIFEST_KIND,
        "version": MANIFEST_VERSION,
        "created": created,
        "completed": completed,
        "undone": undone,
        "namelists": [str(p) for p in plan.namelists],
        "created_dirs": [str(p) for p in plan.created_dirs],
        "moves": [move.to_json() for move in plan.moves],
    }


def new_manifest_path(output_dir: str | os.PathLike[str]) -> Path:
    """A fresh `apply_manifest_<UTC time>.json` path in `output_dir`."""
    folder = Path(output_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path = folder / f"apply_manifest_{stamp}.json"
    number = 2
    while path.exists():
        path = folder / f"apply_manifest_{stamp}_{number}.json"
        number += 1
    return path


def _move_file(source: Path, target: Path) -> None:
    """Move one file without ever replacing an existing one (FileExistsError if `target` exists)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (another file system, FAT, ...): check, then move
        if os.path.lexists(target):
            raise FileExistsError(f"{target} exists") from None
        shutil.move(str(source), str(target))
        return
    os.unlink(source)


@dataclass
class ApplyResult:
    """What an apply did."""

    manifest_path: Path | None
    moved: int
    plan: Plan


def apply_plan(plan: Plan, manifest_path: Path, progress: bool = True) -> ApplyResult:
    """Carry out `plan`; the manifest is on disk before the first move (see the module docstring)."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(manifest_path, _manifest_data(plan, created, completed=False))
    journal_path = manifest_path.with_name(manifest_path.name + ".progress")
    moved = 0
    last_write = time.monotonic()
    with open(journal_path, "a", encoding="utf-8") as journal:
        try:
            for index, move in enumerate(tqdm(plan.moves, desc="moving", unit="file", disable=not progress)):
                try:
                    _move_file(move.source, move.target)
                except FileExistsError:  # the name was taken after planning: pick another, record it first
                    taken = {m.target for m in plan.moves}
                    move.target, move.renamed = (
                        _free_name(move.target.parent, move.source.name, taken)[0],
                        True,
                    )
                    atomic_write_json(manifest_path, _manifest_data(plan, created, completed=False))
                    _move_file(move.source, move.target)
                move.status = "moved"
                moved += 1
                journal.write(f"moved\t{index}\t{move.target}\n")
                journal.flush()
                if moved % PROGRESS_FSYNC_EVERY == 0:
                    os.fsync(journal.fileno())
                if time.monotonic() - last_write >= MANIFEST_REWRITE_SECONDS:
                    atomic_write_json(manifest_path, _manifest_data(plan, created, completed=False))
                    last_write = time.monotonic()
        finally:
            journal.flush()
            os.fsync(journal.fileno())
            atomic_write_json(
                manifest_path, _manifest_data(plan, created, completed=moved == len(plan.moves))
            )
    return ApplyResult(manifest_path, moved, plan)


# --------------------------------------------------------------------------- undo


@dataclass
class UndoResult:
    """What an undo did (or, in a dry run, would do)."""

    manifest_path: Path
    restored: list[tuple[Path, Path]]
    unlinked: list[Path]
    untouched: int
    removed_dirs: list[Path]
    already_undone: bool = False


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A backup manifest written by mww-cluster-apply, checked for shape."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
        if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
            raise ValueError("it is not a mww-cluster-apply backup manifest")
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"it has version {data.get('version')!r}, this program reads {MANIFEST_VERSION}")
        for move in data["moves"]:
            if not all(isinstance(move.get(key), str) for key in ("from", "to", "sha256")):
                raise ValueError("a move lacks from/to/sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ApplyError(
            f"The backup manifest {source} could not be used ({exc}). Give the apply_manifest_*.json that "
            "mww-cluster-apply printed (it is in its --output-dir, ./cluster_output by default). "
            "Nothing was moved."
        ) from None
    return data


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _hash_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def undo(manifest_path: str | os.PathLike[str], dry_run: bool = False, progress: bool = True) -> UndoResult:
    """Move every file of a backup manifest back to where it was (see the module docstring)."""
    path = Path(manifest_path)
    data = read_manifest(path)
    if data.get("undone"):
        return UndoResult(path, [], [], len(data["moves"]), [], already_undone=True)
    restore: list[tuple[Path, Path]] = []
    unlink: list[Path] = []
    untouched = 0
    problems: list[str] = []
    nowhere = 0
    for entry in tqdm(data["moves"], desc="checking", unit="file", disable=not progress):
        source, target, digest = Path(entry["from"]), Path(entry["to"]), entry["sha256"]
        at_source, at_target = os.path.lexists(source), os.path.lexists(target)
        if at_target and not at_source:
            if _hash_or_none(target) == digest:
                restore.append((target, source))
            else:
                problems.append(f"{target} (its content changed since the apply)")
        elif at_source and at_target:
            if _same_file(source, target):
                unlink.append(target)  # interrupted between link and unlink
            elif _hash_or_none(source) == digest:
                untouched += 1  # already back; another file now has the new name
            else:
                problems.append(f"{source} and {target} (both exist and neither is the moved file)")
        elif at_source:
            untouched += 1  # never moved, or already restored
        else:
            nowhere += 1
            problems.append(f"{target} (not there, and not back at {source})")
    if problems:
        if nowhere == len(data["moves"]):
            raise ApplyError(
                f"None of the {nowhere} file(s) in the backup manifest {path} is where it says: for example "
                f"{data['moves'][0]['to']} does not exist (nor {data['moves'][0]['from']}). The manifest is "
                "from another dataset tree, or the files were moved since. Run --undo with the manifest of "
                "this tree, on the machine and paths where the apply ran. Nothing was moved."
            )
        raise ApplyError(
            f"{len(problems)} file(s) of the backup manifest {path} cannot be restored safely: "
            f"{_listing(problems)}. Nothing was moved. Put those files back where the manifest says (or "
            "remove their entries from the manifest to undo the rest), then run --undo again."
        )
    removed: list[Path] = []
    if dry_run:
        return UndoResult(path, restore, unlink, untouched, removed)
    for target in unlink:
        os.unlink(target)
    for target, source in tqdm(restore, desc="restoring", unit="file", disable=not progress):
        _move_file(target, source)
    for folder in sorted((Path(d) for d in data.get("created_dirs", [])), key=lambda p: -len(p.parts)):
        try:
            folder.rmdir()  # only when empty
            removed.append(folder)
        except OSError:
            pass
    data["undone"] = datetime.now(UTC).isoformat(timespec="seconds")
    for entry in data["moves"]:
        entry["status"] = "restored"
    atomic_write_json(path, data)
    return UndoResult(path, restore, unlink, untouched, removed)

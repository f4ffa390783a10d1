"""mww-cluster-apply on real temporary trees: moves, backup manifest, undo (also after a crash)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mww.cli.cluster_apply import main
from mww.cluster import apply as cluster_apply


def make_tree(root: Path) -> Path:
    """positive/<folder>/<clip> files with distinct contents (apply never decodes audio)."""
    for folder, names in {"a": ["1.wav", "2.wav", "x.wav"], "b": ["3.wav", "x.wav"], "c": ["4.wav"]}.items():
        for name in names:
            path = root / "positive" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{folder}/{name}".encode() * 100)
    return root


def state(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under root."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return out


def write_namelist(path: Path, root: Path, mapping: dict[str, str], **meta) -> Path:
    data = {
        "_meta": {
            "dataset": "positive",
            "dataset_dir": str(root / "positive"),
            "dataset_dirs": {"positive": str(root / "positive")},
            **meta,
        },
        "mappings": {str(root / "positive" / k): v for k, v in mapping.items()},
    }
    path.write_text(json.dumps(data))
    return path


MAPPING = {
    "a/1.wav": "speaker_0001",
    "a/2.wav": "speaker_0002",
    "a/x.wav": "speaker_0001",
    "b/3.wav": "speaker_0001",
    "b/x.wav": "speaker_0001",  # same name as a/x.wav in the same speaker folder
    "c/4.wav": "speaker_0002",
}


@pytest.fixture
def tree(tmp_path):
    root = make_tree(tmp_path / "dataset")
    namelist = write_namelist(tmp_path / "positive_namelist.json", tmp_path / "dataset", MAPPING)
    return root, namelist, tmp_path / "out"


def only_manifest(out: Path) -> Path:
    (manifest,) = out.glob("apply_manifest_*.json")
    return manifest


def test_apply_sorts_files_into_speaker_folders_and_undo_restores_every_byte(tree, capsys):
    root, namelist, out = tree
    before = state(root)
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    speaker1 = sorted(p.name for p in (root / "positive" / "speaker_0001").iterdir())
    assert speaker1 == ["1.wav", "3.wav", "x.wav", "x_2.wav"]  # the second x.wav did not overwrite the first
    assert sorted(p.name for p in (root / "positive" / "speaker_0002").iterdir()) == ["2.wav", "4.wav"]
    moved = {h for k, h in state(root).items() if h != "<dir>"}
    assert moved == {h for h in before.values() if h != "<dir>"}  # same contents, nothing lost
    manifest = only_manifest(out)
    assert f"--undo {manifest}" in printed and "1 renamed" in printed
    data = json.loads(manifest.read_text())
    assert data["completed"] is True and {m["status"] for m in data["moves"]} == {"moved"}
    assert len(data["moves"]) == 6 and all(len(m["sha256"]) == 64 for m in data["moves"])
    assert main(["--undo", str(manifest), "--quiet"]) == 0
    assert state(root) == before  # every file back, speaker folders gone
    assert json.loads(manifest.read_text())["undone"]
    assert main(["--undo", str(manifest), "--quiet"]) == 0
    assert "already undone" in capsys.readouterr().out


def test_dry_run_prints_the_plan_and_touches_nothing(tree, capsys):
    root, namelist, out = tree
    before = state(root)
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert state(root) == before and not out.exists()
    assert "would move 6 file(s)" in printed and "(name taken: renamed)" in printed
    assert str(root / "positive" / "speaker_0002" / "4.wav") in printed


def test_an_existing_file_is_never_overwritten(tree):
    root, namelist, out = tree
    squatter = root / "positive" / "speaker_0002" / "4.wav"
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"someone else's file")
    before = state(root)
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    assert squatter.read_bytes() == b"someone else's file"
    assert (root / "positive" / "speaker_0002" / "4_2.wav").read_bytes() == b"c/4.wav" * 100
    assert main(["--undo", str(only_manifest(out)), "--quiet"]) == 0
    assert state(root) == before  # the folder that existed before stays, with its file


def test_applying_again_finds_everything_in_place(tree, capsys):
    _, namelist, out = tree
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    assert "nothing to move" in capsys.readouterr().out
    assert len(list(out.glob("apply_manifest_*.json"))) == 1


CRASHER = """
import os, sys
import mww.cluster.apply as ca
from mww.cli.cluster_apply import main

limit, mode = int(sys.argv[1]), sys.argv[2]
done = [0]
original = ca._move_file

def crashing(source, target):
    if done[0] == limit:
        if mode == "after_link":
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
        os._exit(9)  # killed: no cleanup, no final manifest rewrite
    original(source, target)
    done[0] += 1

ca._move_file = crashing
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(("limit", "mode"), [(0, "before_link"), (3, "before_link"), (4, "after_link")])
def test_undo_after_a_crash_midway_restores_everything(tree, tmp_path, limit, mode):
    root, namelist, out = tree
    before = state(root)
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    args = ["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]
    run = subprocess.run(
        [sys.executable, str(script), str(limit), mode, *args], capture_output=True, text=True
    )
    assert run.returncode == 9, run.stderr
    manifest = only_manifest(out)
    data = json.loads(manifest.read_text())  # written before the first move
    assert data["completed"] is False and len(data["moves"]) == 6
    progress = manifest.with_name(manifest.name + ".progress").read_text().splitlines()
    assert len(progress) == limit  # one line per completed move
    assert state(root) != before or limit == 0
    assert main(["--undo", str(manifest), "--quiet"]) == 0
    assert state(root) == before


def test_an_error_midway_exits_1_and_says_how_to_undo(tree, monkeypatch, capsys):
    root, namelist, out = tree
    before = state(root)
    original = cluster_apply._move_file
    calls = []

    def failing(source, target):
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied", str(target))
        calls.append(source)
        original(source, target)

    monkeypatch.setattr(cluster_apply, "_move_file", failing)
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    manifest = only_manifest(out)
    assert f"--undo {manifest}" in err and "Traceback" not in err
    assert [m["status"] for m in json.loads(manifest.read_text())["moves"]].count("moved") == 2
    monkeypatch.setattr(cluster_apply, "_move_file", original)
    assert main(["--undo", str(manifest), "--quiet"]) == 0
    assert state(root) == before


def test_undo_with_a_manifest_from_another_tree_changes_nothing(tree, tmp_path, capsys):
    root, namelist, out = tree
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    manifest = only_manifest(out)
    data = json.loads(manifest.read_text())
    for move in data["moves"]:  # the same manifest, as if written on another machine
        move["from"] = move["from"].replace(str(root), "/elsewhere/dataset")
        move["to"] = move["to"].replace(str(root), "/elsewhere/dataset")
    foreign = tmp_path / "foreign_manifest.json"
    foreign.write_text(json.dumps(data))
    after_apply = state(root)
    capsys.readouterr()
    assert main(["--undo", str(foreign), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another dataset tree" in err and "/elsewhere/dataset" in err and "Nothing was moved" in err
    assert len(err.strip().splitlines()) == 1 and state(root) == after_apply


def test_undo_refuses_when_a_moved_file_changed_or_vanished(tree, capsys):
    root, namelist, out = tree
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    manifest = only_manifest(out)
    changed = root / "positive" / "speaker_0002" / "4.wav"
    changed.write_bytes(b"edited after the apply")
    (root / "positive" / "speaker_0001" / "3.wav").unlink()
    snapshot = state(root)
    capsys.readouterr()
    assert main(["--undo", str(manifest), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot be restored safely" in err and "4.wav (its content changed" in err and "3.wav" in err
    assert state(root) == snapshot


def test_namelist_pointing_at_missing_files_moves_nothing(tree, tmp_path, capsys):
    root, _, out = tree
    namelist = write_namelist(
        tmp_path / "stale_namelist.json", root, {**MAPPING, "gone/5.wav": "speaker_0003"}
    )
    before = state(root)
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "do not exist" in err and "gone/5.wav" in err and "Rerun mww-cluster-analyze" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert state(root) == before and not out.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "could not be used"),
        ('{"_meta": {}}', 'no "mappings" object'),
        ('{"mappings": {"/x/1.wav": "../escape"}}', "cannot be a folder name"),
        ('{"mappings": {"rel/1.wav": "speaker_0001"}}', "no dataset_dir"),
    ],
)
def test_bad_namelists_are_clear_errors(tmp_path, capsys, content, expected):
    bad = tmp_path / "bad_namelist.json"
    bad.write_text(content)
    assert main(["--namelist", str(bad), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_relative_paths_resolve_against_the_dataset_dir(tree, tmp_path):
    root, _, out = tree
    namelist = tmp_path / "rel_namelist.json"
    namelist.write_text(
        json.dumps(
            {"_meta": {"dataset_dir": str(root / "positive")}, "mappings": {"c/4.wav": "speaker_0009"}}
        )
    )
    assert main(["--namelist", str(namelist), "--output-dir", str(out), "--quiet"]) == 0
    # without _meta.dataset_dirs the speaker folder goes beside the file
    assert (root / "positive" / "c" / "speaker_0009" / "4.wav").is_file()


def test_namelist_dir_applies_every_namelist_and_refuses_conflicts(tree, tmp_path, capsys):
    root, _, out = tree
    folder = tmp_path / "namelists"
    folder.mkdir()
    write_namelist(folder / "positive_namelist.json", root, {"a/1.wav": "speaker_0001"})
    write_namelist(folder / "other_namelist.json", root, {"c/4.wav": "speaker_0002"})
    (folder / "notes.json").write_text("{}")  # not a namelist: ignored
    assert main(["--namelist-dir", str(folder), "--output-dir", str(out), "--quiet"]) == 0
    assert (root / "positive" / "speaker_0001" / "1.wav").is_file()
    assert (root / "positive" / "speaker_0002" / "4.wav").is_file()
    write_namelist(folder / "third_namelist.json", root, {"b/3.wav": "speaker_0001"})
    write_namelist(folder / "fourth_namelist.json", root, {"b/3.wav": "speaker_0004"})
    before = state(root)
    assert main(["--namelist-dir", str(folder), "--output-dir", str(out), "--quiet"]) == 2
    assert "different speakers" in capsys.readouterr().err and state(root) == before
    assert main(["--namelist-dir", str(tmp_path / "nowhere"), "--output-dir", str(out)]) == 2


def test_modes_are_mutually_exclusive_and_one_is_required(tree, capsys):
    _, namelist, out = tree
    with pytest.raises(SystemExit) as both:
        main(["--namelist", str(namelist), "--undo", str(out / "m.json")])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as none:
        main(["--dry-run"])
    assert none.value.code == 2 and "one of the arguments" in capsys.readouterr().err


def test_undo_of_something_that_is_not_a_manifest(tmp_path, capsys):
    bogus = tmp_path / "m.json"
    bogus.write_text('{"moves": []}')
    assert main(["--undo", str(bogus)]) == 2
    assert "not a mww-cluster-apply backup manifest" in capsys.readouterr().err
    assert main(["--undo", str(tmp_path / "missing.json")]) == 2

"""docs/reliability.md cannot drift from the tests: every row names at least one test, every test it
names exists (file, function and parametrized case), and the rows cover every input and fault the
table promises."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "reliability.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^\]]+)\])?`")

# Each input or fault the table must keep a row for (words of its first column).
REQUIRED = [
    "corrupt header",
    "zero-length",
    "all-silent",
    "8 kHz",
    "48 kHz stereo",
    "8-bit and 24-bit",
    "FLAC, OGG, MP3",
    "one-hour recording",
    "spaces and non-ASCII",
    "a missing folder",
    "an empty folder",
    "a linked folder",
    "a link loop",
    "points nowhere",
    "read-only output folder",
    "features are cached",
    "during an export",
    "unknown key",
    "wrong type",
    "device constant",
    "environment variable",
    "missing",
    "truncated",
    "another architecture or input length",
    "SIGINT",
    "SIGTERM",
    "--resume",
    "kill",
    "two trainings",
    "export interrupted",
]


def table_rows() -> list[list[str]]:
    """The body rows of every table of the page, as lists of cells."""
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[-1] != "tests":  # not a header
            rows.append(cells)
    return rows


def test_every_row_names_tests_that_exist():
    rows = table_rows()
    checked = set()
    for cells in rows:
        refs = TEST_REF.findall(cells[-1])
        assert refs, f"the row {cells[0]!r} names no test"
        for path, name, case in refs:
            source = ROOT / path
            assert source.is_file(), f"{path} (row {cells[0]!r}) does not exist"
            text = source.read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", text, re.M), f"{path} has no test {name} (row {cells[0]!r})"
            if case:
                assert f'"{case}"' in text, f"{path}::{name} has no case {case!r} (row {cells[0]!r})"
            checked.add((path, name, case))
    print(f"docs/reliability.md: {len(rows)} rows naming {len(checked)} tests, each found")
    assert len(rows) >= 28


def test_every_promised_input_and_fault_has_a_row():
    first_cells = " / ".join(cells[0] for cells in table_rows())
    missing = [words for words in REQUIRED if words not in first_cells]
    print(f"{len(REQUIRED)} inputs and faults looked for in the first column; missing: {missing}")
    assert not missing


def test_a_test_that_does_not_exist_would_be_caught(tmp_path):
    """The check itself: a reference to a renamed test does not match any definition."""
    ref = TEST_REF.search("`tests/test_cli.py::test_renamed_away`")
    assert ref is not None
    text = (ROOT / ref.group(1)).read_text(encoding="utf-8")
    found = re.search(rf"^def {ref.group(2)}\(", text, re.M)
    print(f"{ref.group(1)}::{ref.group(2)} found: {found is not None}")
    assert found is None

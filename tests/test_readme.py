"""The README's commands exist: every command in a fenced block and every flag in a command table."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Console scripts that run in the PyTorch environment (.venv-torch): their modules import there only.
TORCH_COMMANDS = {"mww-cluster-analyze", "mww-cluster-apply"}
SCRIPT_FILES = {  # scripts/ wrappers and the command they stand for
    "scripts/evaluate_model.py": "mww-evaluate",
    "scripts/verify_esphome.py": "mww-verify",
    "scripts/generate_test_dataset.py": "mww-generate",
}


def fenced_commands(text: str) -> list[list[str]]:
    """Every command line of the fenced shell blocks, split like a shell would (comments dropped)."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
            for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                if part:
                    commands.append(shlex.split(part))
    return commands


def table_flags(text: str) -> dict[str, set[str]]:
    """Flags named in the first column of each command section's table: {command: {--flag, ...}}."""
    found: dict[str, set[str]] = {}
    for section in re.split(r"\n(?=#{3,4} )", text):
        head = re.match(r"#{3,4} `([a-z-]+)`", section)
        if not head or head.group(1) not in SCRIPTS:
            continue
        for row in re.findall(r"^\|([^|\n]*)\|", section, flags=re.M):
            found.setdefault(head.group(1), set()).update(re.findall(r"`(--?[a-zA-Z][\w-]*)", row))
    return found


def options_of(command: str) -> set[str] | None:
    """The option strings of a console script's parser (None in the other environment)."""
    module_name = SCRIPTS[command].split(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if command in TORCH_COMMANDS:
            return None
        raise
    parser = module._parser()
    return set(parser._option_string_actions)


def _invocations() -> list[tuple[str, list[str]]]:
    calls = []
    for words in fenced_commands(README):
        if words[0] == "python" and len(words) > 1 and words[1] in SCRIPT_FILES:
            assert (ROOT / words[1]).is_file(), words[1]
            calls.append((SCRIPT_FILES[words[1]], words[2:]))
        elif words[0] == "bash" and len(words) > 1 and words[1].startswith("scripts/"):
            assert (ROOT / words[1]).is_file(), words[1]
        elif words[0].startswith("mww-"):
            calls.append((words[0], words[1:]))
    return calls


def test_the_readme_runs_every_command_it_promises():
    named = {c for c, _ in _invocations()}
    print(f"\nREADME fenced commands: {sorted(named)}")
    assert {"mww-train", "mww-export", "mww-evaluate", "mww-verify", "mww-autotune", "mww-detect"} <= named
    assert set(table_flags(README)) >= {"mww-train", "mww-export", "mww-evaluate", "mww-verify"}


@pytest.mark.parametrize("command,args", _invocations(), ids=lambda v: v if isinstance(v, str) else "")
def test_fenced_command_and_flags_exist(command, args):
    assert command in SCRIPTS, f"README runs {command}, which is not a console script"
    options = options_of(command)
    if options is None:
        pytest.skip(f"{command} runs in the PyTorch environment (tests/cluster checks it)")
    unknown = [a.split("=")[0] for a in args if a.startswith("-") and a.split("=")[0] not in options]
    assert not unknown, f"README: {command} {' '.join(args)}: unknown flags {unknown}"


@pytest.mark.parametrize("command", sorted(table_flags(README)))
def test_table_flags_exist(command):
    options = options_of(command)
    if options is None:
        pytest.skip(f"{command} runs in the PyTorch environment")
    unknown = sorted(table_flags(README)[command] - options)
    assert not unknown, f"README table of {command} lists flags it does not have: {unknown}"


def test_the_parsers_of_this_test_catch_a_wrong_flag():
    fake = "### `mww-export`\n| flag |\n|---|\n| `--no-such-flag` |\n```bash\nmww-export --bogus x\n```\n"
    assert table_flags(fake) == {"mww-export": {"--no-such-flag"}}
    assert fenced_commands(fake) == [["mww-export", "--bogus", "x"]]
    assert "--no-such-flag" not in options_of("mww-export")

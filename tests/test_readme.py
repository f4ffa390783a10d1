"""The documentation's commands exist: every command in a fenced block and every flag in a command table,
in README.md and in every page of docs/; every docs page is linked from the README, every link and
anchor resolves, every source path and module named exists, and the README stays short."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS_DIR = ROOT / "docs"
DOCS = sorted(DOCS_DIR.rglob("*.md"))
# Every page whose commands are checked: {path relative to the root: text}.
PAGES = {"README.md": README} | {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in DOCS}
# Pages whose links, source paths and module names are checked as well.
OTHER_PAGES = (
    "ARCHITECTURAL_CONSTITUTION.md",
    "checkpoints/README.md",
    "models/README.md",
    "dataset/README.md",
)
REFERENCE_PAGES = PAGES | {
    name: (ROOT / name).read_text(encoding="utf-8") for name in OTHER_PAGES if (ROOT / name).is_file()
}
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Console scripts that run in the PyTorch environment (.venv-torch): their modules import there only.
TORCH_COMMANDS = {"mww-cluster-analyze", "mww-cluster-apply"}
SCRIPT_FILES = {  # scripts/ wrappers and the command they stand for
    "scripts/evaluate_model.py": "mww-evaluate",
    "scripts/verify_esphome.py": "mww-verify",
    "scripts/generate_test_dataset.py": "mww-generate",
}
README_MAX_LINES = 250


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


def prose(text: str) -> str:
    """The text outside fenced blocks (headings and links inside code are not headings or links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """The anchor a heading gets on GitHub: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(text), flags=re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """The targets of the page's Markdown links that point into this repository (not to the web)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", prose(text))
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def options_of(command: str) -> set[str] | None:
    """The option strings of a console script's parser (None in the other environment)."""
    parser = parser_of(command)
    return None if parser is None else set(parser._option_string_actions)


def parser_of(command: str):
    """A console script's argument parser (None in the other environment)."""
    module_name = SCRIPTS[command].split(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if command in TORCH_COMMANDS:
            return None
        raise
    return module._parser()


def _invocations(text: str = README) -> list[tuple[str, list[str]]]:
    calls = []
    for words in fenced_commands(text):
        if words[0] == "python" and len(words) > 1 and words[1] in SCRIPT_FILES:
            assert (ROOT / words[1]).is_file(), words[1]
            calls.append((SCRIPT_FILES[words[1]], words[2:]))
        elif words[0] == "bash" and len(words) > 1 and words[1].startswith("scripts/"):
            assert (ROOT / words[1]).is_file(), words[1]
        elif words[0].startswith("mww-"):
            calls.append((words[0], words[1:]))
    return calls


def _all_invocations() -> list:
    return [
        pytest.param(page, command, args, id=f"{page}:{command}")
        for page, text in PAGES.items()
        for command, args in _invocations(text)
    ]


def _all_tables() -> list:
    return [
        pytest.param(page, command, id=f"{page}:{command}")
        for page, text in PAGES.items()
        for command in sorted(table_flags(text))
    ]


def _inline_commands(text: str) -> list[tuple[str, list[str]]]:
    """Commands with flags quoted inline in the prose, such as `mww-evaluate --split val`."""
    spans = re.findall(r"`(mww-[a-z-]+ [^`\n]*)`", prose(text))
    return [(span.split()[0], span.split()[1:]) for span in spans]


def test_the_readme_runs_every_command_it_promises():
    named = {c for c, _ in _invocations()}
    print(f"\nREADME fenced commands: {sorted(named)}")
    assert {"mww-train", "mww-export", "mww-evaluate", "mww-verify", "mww-autotune", "mww-detect"} <= named
    # The flag tables moved from the README into docs/commands.md; the same commands must have one.
    tables = {c for text in PAGES.values() for c in table_flags(text)}
    assert tables >= {"mww-train", "mww-export", "mww-evaluate", "mww-verify"}


def test_the_command_reference_documents_every_command_and_flag():
    reference = PAGES["docs/commands.md"]
    tables = table_flags(reference)
    assert set(tables) == set(SCRIPTS), f"commands without a flag table: {sorted(set(SCRIPTS) - set(tables))}"
    fenced = {c for text in PAGES.values() for c, _ in _invocations(text)}
    assert fenced >= set(SCRIPTS), f"commands no fenced block runs: {sorted(set(SCRIPTS) - fenced)}"
    for command, listed in tables.items():
        options = options_of(command)
        if options is None:
            continue
        missing = sorted(options - listed - {"-h", "--help"})
        assert not missing, f"docs/commands.md: the table of {command} leaves out {missing}"


@pytest.mark.parametrize("page,command,args", _all_invocations())
def test_fenced_command_and_flags_exist(page, command, args):
    assert command in SCRIPTS, f"{page} runs {command}, which is not a console script"
    parser = parser_of(command)
    if parser is None:
        pytest.skip(f"{command} runs in the PyTorch environment (tests/cluster checks it)")
    options = set(parser._option_string_actions)
    unknown = [a.split("=")[0] for a in args if a.startswith("-") and a.split("=")[0] not in options]
    assert not unknown, f"{page}: {command} {' '.join(args)}: unknown flags {unknown}"
    try:
        parser.parse_args(args)
    except (Exception, SystemExit) as exc:
        pytest.fail(f"{page}: {command} {' '.join(args)} does not parse: {exc}")


@pytest.mark.parametrize("page,command", _all_tables())
def test_table_flags_exist(page, command):
    options = options_of(command)
    if options is None:
        pytest.skip(f"{command} runs in the PyTorch environment")
    unknown = sorted(table_flags(PAGES[page])[command] - options)
    assert not unknown, f"{page}: the table of {command} lists flags it does not have: {unknown}"


def test_inline_commands_and_flags_exist():
    wrong = []
    for page, text in PAGES.items():
        for command, args in _inline_commands(text):
            if command not in SCRIPTS:
                wrong.append(f"{page}: `{command}` is not a console script")
                continue
            options = options_of(command)
            flags = {a.split("=")[0] for a in args if a.startswith("-")}
            if options is not None and flags - options:
                wrong.append(f"{page}: `{command}` has no {sorted(flags - options)}")
    assert not wrong, "\n".join(wrong)


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no page"
    linked = {(ROOT / target.split("#")[0]).resolve() for target in links(README)}
    unlinked = [p.relative_to(ROOT).as_posix() for p in DOCS if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_readme_is_short():
    lines = len(README.splitlines())
    print(f"\nREADME: {lines} lines")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details into docs/"


def test_every_link_and_anchor_resolves():
    broken = []
    for page, text in REFERENCE_PAGES.items():
        here = (ROOT / page).parent
        for target in links(text):
            path, _, anchor = target.partition("#")
            file = (here / path).resolve() if path else ROOT / page
            if not file.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _defines(module_file: str, name: str) -> bool:
    """Whether a module's source defines `name` at its top level (without importing it)."""
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def module_reference_ok(dotted: str) -> bool:
    """`mww.stage.module` is a module, or `mww.stage.module.name` a name defined in one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:cut]))
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        rest = parts[cut:]
        return not rest or (len(rest) == 1 and spec.origin is not None and _defines(spec.origin, rest[0]))
    return False


def test_source_paths_and_module_names_exist():
    missing = []
    for page, text in REFERENCE_PAGES.items():
        for path in re.findall(r"`((?:src|tests|scripts|benchmarks|config)/[\w./-]*)`", text):
            if not (ROOT / path).exists():
                missing.append(f"{page}: {path}")
        names = re.findall(r"`(mww(?:\.\w+)+)`", text)
        for module, imported in re.findall(r"^from (mww[\w.]*) import (.+)$", text, flags=re.M):
            names += [module] + [f"{module}.{n.strip()}" for n in imported.split(",")]
        missing += [f"{page}: {name}" for name in names if not module_reference_ok(name)]
    assert not missing, "paths or modules that do not exist:\n" + "\n".join(missing)


def test_the_parsers_of_this_test_catch_a_wrong_flag():
    fake = "### `mww-export`\n| flag |\n|---|\n| `--no-such-flag` |\n```bash\nmww-export --bogus x\n```\n"
    assert table_flags(fake) == {"mww-export": {"--no-such-flag"}}
    assert fenced_commands(fake) == [["mww-export", "--bogus", "x"]]
    assert "--no-such-flag" not in options_of("mww-export")


def test_the_link_checks_of_this_test_catch_a_broken_link():
    page = "# Top\n## `mww-evaluate` (also `scripts/evaluate_model.py`)\n```bash\n# not a heading\n```\n"
    assert anchors(page) == {"top", "mww-evaluate-also-scriptsevaluate_modelpy"}
    assert slug("How far to trust FA/h") == "how-far-to-trust-fah"
    assert links("[a](docs/x.md#y) [b](https://example.com)") == ["docs/x.md#y"]
    assert _inline_commands("run `mww-evaluate --split val` and `mww-train`") == [
        ("mww-evaluate", ["--split", "val"])
    ]
    assert module_reference_ok("mww.config.load") and module_reference_ok("mww.config.load.load_preset")
    assert not module_reference_ok("mww.prepare") and not module_reference_ok("mww.config.load.no_such")

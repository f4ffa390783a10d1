"""The package's shape: stages import only from stages before them, and no module or function grows
past what a reader can take in at once."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mww"

# The data flow, first to last: a module may import from its own stage and from the stages before it.
STAGES = (
    ("errors", "atomic"),
    ("device",),
    ("config",),
    ("data",),
    ("synth",),
    ("model",),
    ("train",),
    ("export",),
    ("evaluate",),
    ("tune",),
    ("cluster",),
    ("cli", "studio"),  # the commands and the studio over them: both may import every stage
)
RANK = {name: rank for rank, names in enumerate(STAGES) for name in names}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def _stage(module: str) -> str | None:
    """The stage of a dotted module name under mww (`mww.data.ingest` -> `data`)."""
    parts = module.split(".")
    if parts[0] != "mww" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mww":
                found += [(node.lineno, f"mww.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _own_stage(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_stage_is_ranked():
    stages = {_own_stage(p) for p in _modules()} - {"presets"}
    assert stages <= set(RANK), f"stages missing from STAGES: {sorted(stages - set(RANK))}"
    print(f"{len(_modules())} modules in {len(stages)} stages")


def test_imports_follow_the_data_flow():
    against = []
    for path in _modules():
        own = _own_stage(path)
        for line, module in _imports(path):
            stage = _stage(module)
            if stage is None or stage not in RANK or own not in RANK:
                continue
            if RANK[stage] > RANK[own]:
                against.append(f"{path.relative_to(SRC)}:{line} imports {module} (a later stage)")
    assert not against, "imports against the data flow:\n" + "\n".join(against)


def test_no_module_is_too_long():
    long = [
        f"{p.relative_to(SRC)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_no_function_is_too_long():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)

"""docs/architecture.md's rules, checked on the source: which part may import which, the torch and Beam
walls, no import circles, and no private name used outside its package. Every import counts, also those
inside functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cadenza"

# part -> the parts it may import (docs/architecture.md); `cli` may import anything, nothing imports `cli`
MAY_IMPORT: dict[str, set[str]] = {
    "common": set(),
    "formats": {"common"},
    "musiccaps": {"common", "formats"},
    "audit": {"common", "formats", "musiccaps"},
    "tokenizers": {"common", "formats"},
    "pipelines": {"common", "formats"},
    "pipelines.ingest": {"common", "formats", "musiccaps", "pipelines"},
    "pipelines.tokenize": {"common", "formats", "pipelines", "tokenizers"},
    "training": {"common", "formats", "audit", "tokenizers"},
    "codec": {"common", "formats", "audit", "tokenizers", "training"},
    "evaluation": {"common", "formats", "audit", "tokenizers", "training"},
    "testing": {"common"},
    "stages": {"common", "formats", "musiccaps", "audit", "pipelines", "pipelines.ingest", "pipelines.tokenize",
               "tokenizers", "codec", "training", "evaluation"},
    "demo": {"common", "formats", "musiccaps", "stages", "testing"},
}
NO_TORCH_NO_BEAM = ("formats", "musiccaps", "audit")
NO_BEAM = ("tokenizers", "training", "evaluation", "codec")
# common/devices asks torch about CUDA inside a function: common is torch-free only at import time


def part_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "pipelines" and parts[2] in ("ingest", "tokenize"):
        return f"pipelines.{parts[2]}"
    return parts[1] if len(parts) > 1 else ""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        out[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


MODULES = _modules()


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@cache
def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import statement of the file."""
    out = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def _cadenza_targets(module: str, names: list[str]) -> list[str]:
    """The cadenza modules an import statement loads (`from cadenza.x import y` may name module x.y)."""
    if not module.startswith("cadenza"):
        return []
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return subs or ([module] if module != "cadenza" else [])


def test_every_module_belongs_to_a_part_with_rules():
    parts = {part_of(m) for m in MODULES if m != "cadenza"}
    assert parts - set(MAY_IMPORT) == {"cli"}


def test_parts_import_only_what_the_architecture_allows():
    bad = []
    for module, path in MODULES.items():
        me = part_of(module)
        for target_module, names, line in _imports(path):
            for target in _cadenza_targets(target_module, names):
                other = part_of(target)
                if other == me or not other:
                    continue
                if other == "cli" or (me != "cli" and other not in MAY_IMPORT[me]):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {me} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("banned,parts", [(("torch", "apache_beam"), NO_TORCH_NO_BEAM), (("apache_beam",), NO_BEAM)])
def test_torch_and_beam_walls(banned, parts):
    bad = [f"{path.relative_to(ROOT)}:{line}: {target}"
           for module, path in MODULES.items() if part_of(module) in parts
           for target, _, line in _imports(path) if target.split(".")[0] in banned]
    assert not bad, "\n".join(bad)


def test_common_imports_no_torch_or_beam_at_module_level():
    bad = [f"{path.relative_to(ROOT)}:{node.lineno}" for module, path in MODULES.items() if part_of(module) == "common"
           for node in _tree(path).body if isinstance(node, ast.Import | ast.ImportFrom)
           and any((getattr(node, "module", None) or a.name).split(".")[0] in ("torch", "apache_beam")
                   for a in node.names)]
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target_module, names, _ in _imports(path):
            graph[module].update(t for t in _cadenza_targets(target_module, names) if t != module)
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [])
    assert not circles, "\n".join(circles)


def test_no_private_name_crosses_a_package():
    """`from cadenza.a.b import _x` and `b._x` are allowed only inside the package that defines `_x`."""
    bad = []
    for module, path in MODULES.items():
        package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
        tree = _tree(path)
        aliases: dict[str, str] = {}  # local name -> the cadenza module it is
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cadenza"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
                    elif a.name.startswith("_") and not a.name.startswith("__"):
                        if not node.module.startswith(package):
                            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {full}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                owner = aliases[node.value.id]
                if not owner.startswith(package):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {owner}.{node.attr}")
    assert not bad, "\n".join(bad)

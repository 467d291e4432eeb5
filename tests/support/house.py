"""Checks that keep the house standing, over source files: what tests/unit/test_house.py
asserts of the tree, and of planted violations (so that each check can fail).

- :func:`long_functions`: functions longer than :data:`FUNCTION_LINES_MAX` lines
  (TigerBeetle's limit; a nested function counts in its parent too);
- :func:`forbidden_imports`: modules of a flow's pure core that import, directly or
  through other kessai modules, a framework the core must not know (:data:`RUNTIME`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: TigerBeetle's hard limit on a function's length.
FUNCTION_LINES_MAX: Final = 70
#: What a flow's pure core may not import, even indirectly.
RUNTIME: Final = ("faust", "aiokafka", "mode", "prometheus_client")
#: The flows; in each, every module but these is pure core.
FLOWS: Final = ("ledger", "settlement", "matching")
FLOW_RUNTIME_MODULES: Final = ("agent", "service", "views")


@dataclass(frozen=True, order=True)
class LongFunction:
    path: str
    line: int
    name: str
    lines: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name}: {self.lines} lines"


def long_functions(
    files: Iterable[Path], root: Path, limit: int = FUNCTION_LINES_MAX
) -> list[LongFunction]:
    """Every function (or method) in ``files`` longer than ``limit`` lines."""
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    rel = str(path.relative_to(root))
                    out.append(LongFunction(rel, node.lineno, node.name, lines))
    return sorted(out)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str) -> Iterator[str]:
    """Every module ``path`` (the module ``module``) imports, as absolute names; for
    ``from package import name``, both the package and ``package.name``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                yield f"{target}.{alias.name}"


def forbidden_imports(
    roots: Iterable[Path], packages: tuple[str, ...], core: Iterable[str], root: Path
) -> dict[str, list[str]]:
    """For each module of ``core``: the chains by which it reaches a :data:`RUNTIME`
    framework, through modules of ``packages`` (the project's own, found under
    ``roots``); empty when it reaches none."""
    files = {module_name(p, root): p for r in roots for p in r.rglob("*.py")}
    graph = {m: sorted(set(imports(p, m))) for m, p in files.items()}
    found: dict[str, list[str]] = {}
    for start in core:
        chains: list[str] = []
        seen = {start}
        stack = [(start, [start])]
        while stack:
            module, chain = stack.pop()
            for target in graph.get(module, []):
                if target.split(".")[0] in RUNTIME:
                    chains.append(" -> ".join([*chain, target]))
                elif target.split(".")[0] in packages and target in files and target not in seen:
                    seen.add(target)
                    stack.append((target, [*chain, target]))
        if chains:
            found[start] = sorted(chains)
    return found


def flow_cores(streams: Path, root: Path) -> list[str]:
    """The modules of the flows' pure cores: every module of ``streams/<flow>/`` but
    its agent, service (its batch loop) and views."""
    out = []
    for flow in FLOWS:
        for path in sorted((streams / flow).glob("*.py")):
            if path.stem not in FLOW_RUNTIME_MODULES:
                out.append(module_name(path, root))
    return out

"""The house rules, checked over the tree: each check is also run on a planted
violation, so that it can be seen to fail."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import house
from tests.support.paths import DOCS, REPO

#: Every Python file kessai keeps: the product, the schemas, the bench, the tests.
SOURCES = ("streams", "schemas", "bench/kessai_bench", "tests")


def _python_files() -> list[Path]:
    return sorted(p for top in SOURCES for p in (REPO / top).rglob("*.py"))


def test_no_function_is_longer_than_seventy_lines() -> None:
    too_long = house.long_functions(_python_files(), REPO)
    assert not too_long, "split these:\n" + "\n".join(map(str, too_long))


def test_the_length_check_finds_a_planted_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(house.FUNCTION_LINES_MAX))
    planted = tmp_path / "planted.py"
    planted.write_text(f"def short() -> None:\n    pass\n\n\ndef long() -> None:\n{body}\n")
    [found] = house.long_functions([planted], tmp_path)
    assert (found.name, found.lines) == ("long", house.FUNCTION_LINES_MAX + 1)


def test_no_flow_core_imports_the_runtime_even_indirectly() -> None:
    cores = house.flow_cores(REPO / "streams", REPO)
    assert "streams.ledger.handler" in cores and "streams.ledger.agent" not in cores
    found = house.forbidden_imports(
        [REPO / "streams", REPO / "schemas"], ("streams", "schemas"), cores, REPO
    )
    assert not found, "\n".join(chain for chains in found.values() for chain in chains)


def test_the_import_check_finds_a_planted_indirect_import(tmp_path: Path) -> None:
    flow = tmp_path / "streams" / "ledger"
    flow.mkdir(parents=True)
    (tmp_path / "streams" / "__init__.py").write_text("")
    (flow / "__init__.py").write_text("")
    (flow / "domain.py").write_text("from streams.ledger import helper\n")
    (flow / "helper.py").write_text("from streams import glue\n")
    (tmp_path / "streams" / "glue.py").write_text("import faust\n")
    (flow / "agent.py").write_text("import faust\n")  # an agent may
    cores = house.flow_cores(tmp_path / "streams", tmp_path)
    found = house.forbidden_imports([tmp_path / "streams"], ("streams",), cores, tmp_path)
    assert found == {
        "streams.ledger.domain": [
            "streams.ledger.domain -> streams.ledger.helper -> streams.glue -> faust"
        ],
        "streams.ledger.helper": ["streams.ledger.helper -> streams.glue -> faust"],
    }


def _layout_section() -> str:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n(.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/architecture.md has no '## Layout' section"
    return match.group(1)


def _named_paths(section: str) -> set[str]:
    """Every ``path/`` or ``path.py`` the section's tree names, as a path from the root."""
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block, "the layout section has no tree"
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.group(1).splitlines():
        m = re.match(r"^([ │├└─]*)([\w./-]+)", line)
        if not m or not m.group(2).strip():
            continue
        depth = len(m.group(1))
        name = m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        path = parent + name
        if name.endswith("/"):
            stack.append((depth, path))
        paths.add(path.rstrip("/"))
    return paths


def test_the_layout_in_the_architecture_doc_matches_the_tree() -> None:
    named = _named_paths(_layout_section())
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names what the tree lacks: {missing}"
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "streams").rglob("__init__.py")}
    modules = {
        str(p.relative_to(REPO))
        for p in (REPO / "streams").rglob("*.py")
        if p.name != "__init__.py"
    }
    unnamed = sorted((packages | modules) - named)
    assert not unnamed, f"docs/architecture.md's layout leaves out: {unnamed}"


def test_ci_runs_make_test() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert "make test" in commands, ".ci/run must call `make test`, as the README says"


def _notes_citations(files: list[Path], root: Path = REPO) -> list[str]:
    return [
        f"{path.relative_to(root)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bnotes/\d{4}-", line)
    ]


def test_no_code_cites_the_dated_notes() -> None:
    """Knowledge lives in docs/ (ADRs, performance, known limitations); the dated notes
    are history that nothing may depend on."""
    cited = _notes_citations(_python_files())
    assert not cited, f"cite docs/ instead: {cited}"


def test_the_notes_check_finds_a_planted_citation(tmp_path: Path) -> None:
    planted = tmp_path / "x.py"
    planted.write_text("# as measured (notes/" + "2026-11-25-bench.md)\nx = 1\n")
    assert _notes_citations([planted], tmp_path) == ["x.py:1"]


def _agent_importers(root: Path, streams: Path) -> list[str]:
    """Modules that import a flow's agent, other than the app that wires them."""
    out = []
    for path in sorted(streams.rglob("*.py")):
        module = house.module_name(path, root)
        for target in house.imports(path, module):
            flow_agent = any(target == f"streams.{f}.agent" for f in house.FLOWS)
            if flow_agent and module != "streams.runtime.app":
                out.append(f"{module} -> {target}")
    return out


def test_only_the_app_imports_a_flows_agent() -> None:
    assert _agent_importers(REPO, REPO / "streams") == []


def test_the_agent_check_finds_a_planted_import(tmp_path: Path) -> None:
    (tmp_path / "streams" / "matching").mkdir(parents=True)
    (tmp_path / "streams" / "matching" / "handler.py").write_text(
        "from streams.ledger.agent import something\n"
    )
    assert _agent_importers(tmp_path, tmp_path / "streams") == [
        "streams.matching.handler -> streams.ledger.agent"
    ]

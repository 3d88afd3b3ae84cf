"""The README's "How it works" against the code: every module listed exists and every module is listed, and
the import directions it states hold in the code's own imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "grader"
# The layers, bottom first: a package imports only from its own layer's package or from a lower layer.
LAYERS = (("errors",), ("report", "exercise", "sandbox", "output"), ("pipeline", "render"), ("learner",), ("cli",))
RANK = {package: rank for rank, names in enumerate(LAYERS) for package in names}
ORCHESTRATION = ("grader.pipeline.grading", "grader.pipeline.batch")
# Judging and diagnosing are pure functions of run outcomes, expected values and the spec: they start nothing.
PURE_STAGES = ("judge", "compare", "tree", "diagnose", "mistakes")
STARTS_PROCESSES = ("grader.sandbox.process", "grader.sandbox.isolation", "grader.sandbox.inprocess", "subprocess")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py" or "__pycache__" in path.parts or path == PACKAGE / "__init__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if path.name == "__init__.py" else parts)] = path
    return found


def _imports(path: Path, *, prefix: tuple[str, ...] = ("grader.",)) -> set[str]:
    """Every module a file imports, at the top or inside functions (``from grader.pipeline import tree`` counts
    as ``grader.pipeline.tree``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith(prefix)}


def _package(module: str) -> str:
    return module.split(".")[1]


def _listed() -> set[str]:
    """The modules the README's tree names: ``grader/`` at the top, packages indented by 2, their modules by 4."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## How it works", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    listed, folder = set(), None
    for line in block.strip("\n").splitlines()[1:]:
        if line and not line.startswith(" "):
            break  # past the package: exercises/, reference/, ...
        match = re.match(r"^( +)([a-z_]+)(\.py|/)", line)
        if not match:
            continue
        indent, name, kind = match.groups()
        if kind == "/":
            folder = name
        elif len(indent) == 2:
            listed.add(f"grader.{name}")
        else:
            listed.add(f"grader.{folder}.{name}")
    return listed


def test_every_module_is_in_the_readme_and_every_listed_one_exists() -> None:
    modules = {name for name in _modules() if name.count(".") > 1 or name in ("grader.errors", "grader.output")}
    listed = _listed()
    assert modules - listed == set(), "modules the README's How it works does not list"
    assert listed - modules == set(), "modules the README lists that do not exist"


def test_every_package_is_in_a_layer() -> None:
    packages = {_package(name) for name in _modules()}
    assert packages - set(RANK) == set(), "packages no layer names: add them to LAYERS and the README"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_go_down_the_layers(module: str) -> None:
    path, own = _modules()[module], _package(module)
    upward = {m for m in _imports(path) if _package(m) != own and RANK[_package(m)] >= RANK[own]}
    assert upward == set(), f"{module} imports from its own layer or above"


def test_renderers_read_only_the_report() -> None:
    for name, path in _modules().items():
        if name.startswith("grader.render."):
            foreign = {m for m in _imports(path) if _package(m) not in ("report", "render")}
            allowed = (
                {m for m in foreign if m.startswith("grader.exercise.spec")} if name.endswith(".exercise") else set()
            )
            assert foreign == allowed, (name, foreign)


def test_stages_never_import_what_orchestrates_them() -> None:
    for name, path in _modules().items():
        if name.startswith("grader.pipeline.") and name not in ORCHESTRATION:
            upward = {m for m in _imports(path) if m.startswith(ORCHESTRATION)}
            assert upward == set(), (name, upward)


@pytest.mark.parametrize("stage", PURE_STAGES)
def test_judging_and_diagnosis_start_no_process(stage: str) -> None:
    path = PACKAGE / "pipeline" / f"{stage}.py"
    imported = _imports(path, prefix=("grader.", "subprocess"))
    starters = {m for m in imported if m.startswith(STARTS_PROCESSES) or m.split(".")[-1].startswith("run_")}
    assert starters == set(), f"{stage} can start a process: {starters}"


def test_nothing_imports_the_cli_and_no_one_reaches_into_sandbox_internals() -> None:
    for name, path in _modules().items():
        imported = _imports(path)
        assert not any(_package(m) == "cli" for m in imported) or _package(name) == "cli", name
        if _package(name) != "sandbox":
            private = {m for m in imported if _package(m) == "sandbox" and m.rsplit(".", 1)[1].startswith("_")}
            assert private == set(), (name, private)


def test_a_layer_violation_is_caught(tmp_path: Path) -> None:
    """The checker itself: a renderer importing the pipeline is seen as going up."""
    bad = tmp_path / "bad.py"
    bad.write_text("from grader.pipeline.grading import grade_file\n", encoding="utf-8")
    assert {m for m in _imports(bad) if RANK[_package(m)] >= RANK["render"]} == {
        "grader.pipeline.grading",
        "grader.pipeline.grading.grade_file",
    }

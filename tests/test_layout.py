"""The README's "How it works" against the code: every module listed exists and every module is listed, and
the import directions it states hold in the code's own imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "grader"
# The pipeline's stages: none of them imports the orchestration above it (grading, batch, watch, notebook,
# cli), nor a renderer.
STAGES = ("exercise", "cases", "source", "reference", "judge", "compare", "tree", "diagnose", "mistakes", "schema")
ABOVE = ("grader.grading", "grader.batch", "grader.watch", "grader.notebook", "grader.cli", "grader.render")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py") or "__pycache__" in path.parts:
            continue
        found[".".join(path.relative_to(ROOT).with_suffix("").parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (``from grader import tree`` counts as
    ``grader.tree``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("grader")}


def _listed() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## How it works", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    listed, folder = set(), "grader"
    for line in block.splitlines():
        if line and not line.startswith(" ") and not line.startswith("grader/"):
            break  # past the package: exercises/, reference/, ...
        match = re.match(r"^( *)([a-z_]+)(\.py|/)", line)
        if not match:
            continue
        indent, name, kind = match.groups()
        if kind == "/":
            folder = f"grader.{name}" if indent else name
        else:
            listed.add(f"{folder if len(indent) > 2 else 'grader'}.{name}")
    return listed


def test_every_module_is_in_the_readme_and_every_listed_one_exists() -> None:
    modules, listed = set(_modules()), _listed()
    assert modules - listed == set(), "modules the README's How it works does not list"
    assert listed - modules == set(), "modules the README lists that do not exist"


def test_renderers_import_only_the_schema_and_each_other() -> None:
    for name, path in _modules().items():
        if name.startswith("grader.render."):
            foreign = {m for m in _imports(path) if not m.startswith(("grader.schema", "grader.render"))}
            assert foreign <= {"grader.exercise", "grader.exercise.Exercise"} or name == "grader.render.exercise", (
                name,
                foreign,
            )


def test_stages_never_import_what_orchestrates_them() -> None:
    modules = _modules()
    for stage in STAGES:
        upward = {m for m in _imports(modules[f"grader.{stage}"]) if m.startswith(ABOVE)}
        assert upward == set(), (stage, upward)


def test_nothing_imports_the_cli_and_no_one_reaches_into_sandbox_internals() -> None:
    for name, path in _modules().items():
        imported = _imports(path)
        assert not any(m.startswith("grader.cli") for m in imported) or name == "grader.cli", name
        if not name.startswith("grader.sandbox."):
            private = {m for m in imported if m.startswith("grader.sandbox.") and m.rsplit(".", 1)[1].startswith("_")}
            assert private == set(), (name, private)

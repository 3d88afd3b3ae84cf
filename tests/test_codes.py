"""The engine's diagnosis codes: one table (grader/report/codes.py), the README's list equal to it, no code
written as a string anywhere else in the package, every way a run ends or a comparison fails giving one of
them, and no exercise's catalog reusing one."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import get_args

import pytest

from grader.pipeline.diagnose import (
    CODE_OF_ENDING,
    CODE_OF_KIND,
    HARNESS_HINT,
    case_diagnoses,
    run_diagnosis,
    skip_reason,
    syntax_diagnosis,
)
from grader.pipeline.source import parse_source
from grader.report.codes import TABLE, Code, default_hint, info
from grader.report.schema import CaseResult, Comparison, ComparisonKind, Diagnosis, ErrorInfo
from grader.sandbox.outcome import ChildRun, Ending
from tests.conftest import ROOT

PACKAGE = ROOT / "grader"
TABLE_MODULE = PACKAGE / "report" / "codes.py"
ENGINE_CODES = [code.value for code in Code]
# Strings other vocabularies share with codes on purpose (codes.py says how they relate): how a run ended,
# what a comparison found. Written as those, they are not codes.
SHARED = set(get_args(Ending)) | set(get_args(ComparisonKind))
CODE_ONLY = set(ENGINE_CODES) - SHARED


def _readme_codes() -> list[str]:
    """The first column of the README's table under "### Diagnosis codes"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Diagnosis codes\n", 1)[1].split("\n#", 1)[0]
    table = section.strip().split("\n\n", 1)[0].splitlines()
    assert table[0].startswith("| code |") and set(table[1]) <= set("|-"), "the section starts with its table"
    return [re.fullmatch(r"\| `([a-z-]+)` \|.*", row)[1] for row in table[2:]]  # type: ignore[index]


def test_the_readme_lists_exactly_the_engine_codes() -> None:
    listed = _readme_codes()
    assert sorted(set(listed) - set(ENGINE_CODES)) == [], "the README lists codes the table does not hold"
    assert sorted(set(ENGINE_CODES) - set(listed)) == [], "the table holds codes the README does not list"
    assert listed == ENGINE_CODES, "the README lists them in the table's order, each once"


def test_every_code_has_one_complete_entry() -> None:
    assert list(TABLE) == list(Code)
    for code, entry in TABLE.items():
        assert entry.code is code
        assert entry.title and entry.title[0].islower() and not entry.title.endswith("."), code
        assert entry.hint is None or entry.hint.endswith("."), code
        assert entry.family in ("submission", "run", "mistake"), code


@pytest.mark.parametrize(
    ("code", "found"),
    [("values-mismatch", Code.VALUES_MISMATCH), ("cancelled", Code.CANCELLED), ("dropout-rng-mismatch", None)],
)
def test_info_finds_engine_codes_and_not_a_catalogs(code: str, found: Code | None) -> None:
    entry = info(code)
    assert (entry.code if entry else None) == found


def test_a_default_hint_has_its_names_filled_in() -> None:
    hint = default_hint(Code.MISSING_ENTRY_POINT, entry_point="forward")
    assert hint == "Define a function named 'forward' at the top level of the file."
    with pytest.raises(KeyError):
        default_hint(Code.MISSING_ENTRY_POINT)  # a placeholder never reaches a report
    assert default_hint(Code.PROTOCOL_ERROR) is None


def test_every_run_ending_and_failed_comparison_gives_a_table_code() -> None:
    assert set(CODE_OF_ENDING) == set(get_args(Ending)) - {"completed"}
    assert set(CODE_OF_KIND) == set(get_args(ComparisonKind)) - {"match"}
    # Where an ending or a kind shares its string with a code, it gives that code (codes.py's docstring).
    for word, code in [*CODE_OF_ENDING.items(), *CODE_OF_KIND.items()]:
        assert word not in ENGINE_CODES or code == word, (word, code)


# -- no code written outside the table ------------------------------------------------------------------


def _is_code(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "code") or (
        isinstance(node, ast.Name) and node.id == "code"
    )


def _strings(node: ast.AST | None, *, engine_only: bool = False) -> bool:
    """Whether ``node`` holds a string literal (an engine code, with ``engine_only``)."""
    return node is not None and any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) and (not engine_only or n.value in ENGINE_CODES)
        for n in ast.walk(node)
    )


def _literal(node: ast.AST) -> bool:
    """A string literal, or an expression that holds an engine code's string."""
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or _strings(node, engine_only=True)


def _module_values(tree: ast.Module) -> dict[str, ast.expr]:
    values: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            values.update({t.id: node.value for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            values[node.target.id] = node.value
    return values


def code_literals(source: str) -> list[str]:
    """Where a module writes or compares an engine code as a string literal: a code no other vocabulary
    shares, anywhere; ``code=``/``diagnosis=`` given a string; a ``.code`` compared with strings (or with a
    module constant that holds some); a dict of engine-code strings looked up by a ``.code``; a dict that
    sets ``"code"`` to a string."""
    tree = ast.parse(source)
    constants = _module_values(tree)

    def resolved(node: ast.AST) -> ast.AST | None:
        return constants.get(node.id) if isinstance(node, ast.Name) else node

    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and node.value in CODE_ONLY:
            found.append(f"{where}: {node.value!r}")
        elif isinstance(node, ast.keyword) and node.arg in ("code", "diagnosis") and _literal(node.value):
            found.append(f"{where}: {node.arg}= a string")
        elif isinstance(node, ast.Compare) and any(_is_code(n) for n in [node.left, *node.comparators]):
            others = [n for n in [node.left, *node.comparators] if not _is_code(n)]
            if any(_strings(resolved(n)) for n in others):
                found.append(f"{where}: a code compared with a string")
        elif (
            isinstance(node, ast.Subscript)
            and _is_code(node.slice)
            and _strings(resolved(node.value), engine_only=True)
        ):
            found.append(f"{where}: a table of code strings indexed by a code")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and _is_code(node.args[0])
            and _strings(resolved(node.func.value), engine_only=True)
        ):
            found.append(f"{where}: a table of code strings looked up by a code")
        elif isinstance(node, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "code" and v is not None and _literal(v)
            for k, v in zip(node.keys, node.values, strict=True)
        ):
            found.append(f"{where}: a 'code' set to a string")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        'Diagnosis(code="timeout", message="m")',
        'BatchEntry(path="p", status="failed", diagnosis="values-mismatch", message="m")',
        'if report.diagnoses[0].code == "not-attempted": pass',
        'if d.code in ("timeout", "crashed"): pass',
        'SENSITIVE = frozenset({"timeout"})\nif d.code in SENSITIVE: pass',
        'reason = {"exited": "the submission ended the process"}.get(problem.code, "")',
        'reason = {"import-error": "the file could not be imported"}[problem.code]',
        'd.model_copy(update={"code": "shape-mismatch"})',
        'hint = "fails-fresh-cases"',
    ],
)
def test_the_scan_catches_a_code_written_as_a_string(snippet: str) -> None:
    assert code_literals(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "Diagnosis(code=Code.TIMEOUT, message='m')",
        'if comparison.kind == "values-mismatch": pass',
        'if run.ending in ("timeout", "crashed"): pass',
        "if d.code in LOAD_SENSITIVE: pass",
        "hint = feedback[d.code]",
    ],
)
def test_the_scan_leaves_kinds_endings_and_table_codes_alone(snippet: str) -> None:
    assert code_literals(snippet) == []


def test_no_module_writes_an_engine_code_as_a_string() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != TABLE_MODULE and (hits := code_literals(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "use grader.report.codes (Code.X, info(code)) instead of the string"


# -- the diagnoses take codes, titles and hints from the table ----------------------------------------------

SOURCE = parse_source(Path("submission.py"), "def forward(x):\n    return x\n")


@pytest.mark.parametrize("ending", sorted(set(get_args(Ending)) - {"completed", "memory-limit"}))
def test_a_stopped_run_gives_its_endings_code_and_hint(ending: Ending) -> None:
    run = ChildRun(ending=ending, phase="case:first", detail="what happened")
    diagnosis = run_diagnosis(run, SOURCE, "forward")
    assert diagnosis is not None
    assert diagnosis.code == CODE_OF_ENDING[ending]
    assert diagnosis.hint == (HARNESS_HINT if ending == "harness-error" else TABLE[CODE_OF_ENDING[ending]].hint)
    assert diagnosis.cases == ["first"]


def test_a_crash_that_ran_out_of_memory_is_a_memory_limit_with_the_crashs_hint() -> None:
    run = ChildRun(ending="crashed", phase="case:first", stray_stderr=b"MemoryError: bad_alloc\n")
    diagnosis = run_diagnosis(run, SOURCE, "forward")
    assert diagnosis is not None
    assert (diagnosis.code, diagnosis.hint) == (Code.MEMORY_LIMIT, TABLE[Code.CRASHED].hint)


def test_skipped_cases_name_the_title_of_a_submission_problem_and_where_a_run_stopped() -> None:
    broken = parse_source(Path("submission.py"), "def forward(x)\n    return x\n")
    assert skip_reason(syntax_diagnosis(broken)) == TABLE[Code.SYNTAX_ERROR].title == "the file does not parse"
    stopped = Diagnosis(code=Code.TIMEOUT, message="Timed out in case first: no answer within 2 s.")
    assert skip_reason(stopped) == "timed out in case first: no answer within 2 s"


def _failed(case_id: str, kind: ComparisonKind, **numbers: int) -> CaseResult:
    comparison = Comparison(
        ok=False, kind=kind, message=f"{kind} here", expected_shape=[2], expected_dtype="float32", rtol=0, atol=0
    )
    comparison = comparison.model_copy(update=numbers)
    return CaseResult(
        id=case_id, title="t", status="failed", weight=1, score=0, inputs={}, message="m", comparison=comparison
    )


@pytest.mark.parametrize("kind", sorted(set(get_args(ComparisonKind)) - {"match"}))
def test_a_failed_comparison_is_grouped_under_its_kinds_code(kind: ComparisonKind) -> None:
    [diagnosis] = case_diagnoses([_failed("first", kind)], SOURCE)
    code = CODE_OF_KIND[kind]
    assert (diagnosis.code, diagnosis.hint, diagnosis.cases) == (code, TABLE[code].hint, ["first"])
    assert diagnosis.message.lower().startswith(TABLE[code].title.lower() + " in 1 case")


def test_shape_mismatches_come_before_too_large_outputs_in_one_finding() -> None:
    results = [_failed("big", "too-large"), _failed("small", "shape-mismatch"), _failed("nan", "values-mismatch")]
    results[2] = results[2].model_copy(update={"comparison": results[2].comparison.model_copy(update={"nan_count": 1})})
    found = case_diagnoses(results, SOURCE)
    assert [(d.code, d.cases) for d in found] == [
        (Code.SHAPE_MISMATCH, ["small", "big"]),
        (Code.NON_FINITE, ["nan"]),
        (Code.VALUES_MISMATCH, ["nan"]),
    ]
    assert found[1].message.startswith("The function returned NaN or Inf values in 1 case")


def test_an_untouched_starter_is_not_attempted_and_hides_the_cases_detail() -> None:
    error = ErrorInfo(type="NotImplementedError", message="")
    results = [
        CaseResult(id=i, title="t", status="error", weight=1, score=0, inputs={}, message="m", error=error)
        for i in ("first", "second")
    ]
    [diagnosis] = case_diagnoses(results, SOURCE)
    assert (diagnosis.code, diagnosis.hint) == (Code.NOT_ATTEMPTED, TABLE[Code.NOT_ATTEMPTED].hint)
    assert [c for c in Code if not TABLE[c].case_detail] == [Code.NOT_ATTEMPTED]


# -- exercises ------------------------------------------------------------------------------------------------


def _exercise_folders() -> list[Path]:
    return sorted(
        p.parent for p in [*ROOT.glob("exercises/*/exercise.toml"), *ROOT.glob("tests/fixtures/*/*/exercise.toml")]
    )


def _catalog_codes(folder: Path) -> list[str]:
    spec = tomllib.loads((folder / "exercise.toml").read_text(encoding="utf-8"))
    if "mistakes" not in spec:
        return []
    catalog = tomllib.loads((folder / spec["mistakes"]).read_text(encoding="utf-8"))
    return [mistake["code"] for mistake in catalog.get("mistake", [])]


def test_exercise_catalogs_never_reuse_an_engine_code() -> None:
    catalogs = {folder.name: _catalog_codes(folder) for folder in _exercise_folders()}
    assert sum(map(len, catalogs.values())) > 0, "the check found catalogs to look at"
    reused = {name: sorted(set(codes) & set(ENGINE_CODES)) for name, codes in catalogs.items()}
    assert {name: codes for name, codes in reused.items() if codes} == {}


def test_exercise_feedback_is_keyed_by_codes_that_exist() -> None:
    """``[feedback]`` replaces the hint of a code: an engine code, or one of the exercise's catalog."""
    for folder in _exercise_folders():
        spec = tomllib.loads((folder / "exercise.toml").read_text(encoding="utf-8"))
        unknown = set(spec.get("feedback", {})) - set(ENGINE_CODES) - set(_catalog_codes(folder))
        assert unknown == set(), (folder.name, sorted(unknown))


def _catalog_table(exercise_id: str) -> list[str]:
    """The first column of the README's table under "Codes of the exercise `<id>`"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    heading = f"Codes of the exercise `{exercise_id}`"
    assert heading in text, f"the README has no table of {exercise_id}'s codes"
    rows = text.split(heading, 1)[1].split("\n\n", 2)[1]
    return [m.group(1) for m in re.finditer(r"^\| `([a-z-]+)` \|", rows, flags=re.MULTILINE)]


@pytest.mark.parametrize("exercise_id", sorted(p.parent.name for p in (ROOT / "exercises").glob("*/mistakes.toml")))
def test_the_readme_lists_every_catalog_code_of_every_bundled_exercise(exercise_id: str) -> None:
    catalog = tomllib.loads((ROOT / "exercises" / exercise_id / "mistakes.toml").read_text(encoding="utf-8"))
    assert _catalog_table(exercise_id) == [m["code"] for m in catalog["mistake"]]

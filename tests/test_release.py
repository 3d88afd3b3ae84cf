"""Learner packs (``grader release``): what a pack holds and what it must not, that it grades as the full
exercise does on the visible cases, what a report says of versions that differ, and that a tampered pack is
a fault of the exercise, never the learner's failure."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from grader.errors import GraderError, SpecError, UsageError
from grader.exercise.cases import build_cases
from grader.exercise.catalog import Catalog
from grader.exercise.pack import PACK_FILES, Stamp, catalog_toml, spec_toml, stamp_notes, toml_text
from grader.exercise.spec import SPEC_FILE, ExerciseSpec, discover_exercises, load_exercise
from grader.learner.notebook import check
from grader.pipeline import stored
from grader.pipeline.grading import GradeOptions, grade_file, trusted_env
from grader.pipeline.release import release
from grader.report.schema import Report
from tests.conftest import FIXTURES, ROOT, SUBMISSIONS, TOY_EXERCISES, cli_env, copy_toy_exercise, grade_as_batch

BUNDLED_ROOT = ROOT / "exercises"
BUNDLED = sorted(discover_exercises([BUNDLED_ROOT]))
DROPOUT = "train-eval-dropout"
TOY = "toy-scale"
TOY_REFERENCE_LINE = "return (np.asarray(x) * np.float32(factor)).astype(np.float32)"
CORRECT_TOY = f"import numpy as np\n\n\ndef scale(factor, x):\n    {TOY_REFERENCE_LINE}\n"
GRADER = [sys.executable, "-m", "grader"]


def _without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grader's, JAX's and XLA's settings of whoever runs the tests stay out of the stamps."""
    for name in [n for n in os.environ if n.startswith(("GRADER_", "JAX_", "XLA_"))]:
        monkeypatch.delenv(name)


class _Packs:
    """Each bundled exercise released once for the session, on first use, into a folder of its own."""

    def __init__(self, base: Path, cache_dir: Path) -> None:
        self._base = base
        self._cache_dir = cache_dir
        self._roots: dict[str, Path] = {}

    def root(self, exercise_id: str) -> Path:
        """The folder that holds the exercise's pack (``root/<id>/``), as ``GRADER_EXERCISES`` names it."""
        if exercise_id not in self._roots:
            root = self._base / exercise_id
            with pytest.MonkeyPatch.context() as monkeypatch:
                _without_settings(monkeypatch)
                env = trusted_env(GradeOptions(cache_dir=self._cache_dir))
                release([exercise_id], root, roots=[BUNDLED_ROOT], cache_dir=self._cache_dir, env=env)
            self._roots[exercise_id] = root
        return self._roots[exercise_id]


@pytest.fixture(scope="session")
def packs(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> _Packs:
    return _Packs(tmp_path_factory.mktemp("packs"), cache_dir)


@pytest.fixture(scope="module")
def toy_release(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The jax-free toy exercise released once; tests that change it take a copy (``toy_pack``)."""
    root = tmp_path_factory.mktemp("toy-release") / "packs"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _without_settings(monkeypatch)
        release([TOY], root, roots=[TOY_EXERCISES], cache_dir=cache_dir)
    return root


@pytest.fixture
def toy_pack(toy_release: Path, tmp_path: Path) -> Path:
    """A copy of the toy pack, and a correct submission beside it (``tmp_path / "s.py"``)."""
    shutil.copytree(toy_release, tmp_path / "packs")
    (tmp_path / "s.py").write_text(CORRECT_TOY, encoding="utf-8")
    return tmp_path / "packs"


def _grade_toy(pack: Path, cache_dir: Path, *, seed: int | None = None) -> Report:
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[pack], seed=seed)
    return grade_file(pack.parent / "s.py", options=options)


def _edit_stored(pack: Path, change: Callable[[dict], object]) -> None:
    path = pack / TOY / "expected.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


# --- what a pack holds -------------------------------------------------------------------------------------


def _secret_lines(exercise_id: str) -> set[str]:
    """The lines of the reference and the variants no pack may hold: longer than 20 characters, not imports
    or comments, and not shown to learners by the exercise itself (the prompt and the starter give the
    signature)."""
    exercise = discover_exercises([BUNDLED_ROOT])[exercise_id]
    sources = [exercise.reference_path, exercise.catalog_file(exercise.catalog.variants)]
    public = {line.strip() for text in (exercise.prompt_text(), exercise.starter_text()) for line in text.splitlines()}
    return {
        line.strip()
        for source in sources
        if source is not None
        for line in source.read_text(encoding="utf-8").splitlines()
        if len(line.strip()) > 20 and not line.strip().startswith(("import ", "from ", "#"))
    } - public


@pytest.mark.parametrize("exercise_id", BUNDLED)
def test_a_pack_holds_no_line_of_the_reference_or_variants_and_no_hidden_case(packs: _Packs, exercise_id: str) -> None:
    folder = packs.root(exercise_id) / exercise_id
    full = discover_exercises([BUNDLED_ROOT])[exercise_id]
    secrets = _secret_lines(exercise_id)
    assert len(secrets) >= 5  # the check below has something to find
    hidden = [case for case in full.spec.cases if case.hidden]
    assert hidden, "a bundled exercise without hidden cases tests nothing here"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert {p.name for p in files} <= PACK_FILES
    for path in files:
        text = path.read_text(encoding="utf-8")
        leaked = [line.strip() for line in text.splitlines() if line.strip() in secrets]
        assert leaked == [], f"{path.name} holds lines of the reference or variants"
        for case in hidden:
            assert not re.search(rf"(?<![\w.-]){re.escape(case.id)}(?![\w.-])", text), (path.name, case.id)
            assert case.title not in text, (path.name, case.title)


@pytest.mark.parametrize("exercise_id", BUNDLED)
def test_a_pack_is_the_visible_cases_without_reference_or_generators(packs: _Packs, exercise_id: str) -> None:
    full = discover_exercises([BUNDLED_ROOT])[exercise_id]
    pack = load_exercise(packs.root(exercise_id) / exercise_id)
    assert pack.spec.reference is None and pack.spec.expected == "expected.json"
    assert pack.spec.generators == [] and "[[generators]]" not in (pack.folder / SPEC_FILE).read_text()
    assert [c.id for c in pack.spec.cases] == [c.id for c in full.spec.cases if not c.hidden]
    assert pack.spec.entry_point == full.spec.entry_point and pack.spec.hints == full.spec.hints
    assert pack.catalog.mistake == full.catalog.mistake and pack.catalog.exception == full.catalog.exception
    assert not (pack.folder / "variants.py").exists()
    held = json.loads((pack.folder / "expected.json").read_text())
    visible = [case.id for case in build_cases(pack)]
    assert sorted(held["outputs"]) == sorted(visible)
    names = {name for mistake in full.catalog.mistake for name in mistake.variants}
    assert sorted(held["variants"]) == sorted(f"{name}::{case}" for name in names for case in visible)


def _visible_only(exercise_id: str, target: Path) -> Path:
    """The full exercise restricted to its visible cases (its reference, variants and analysis where they
    are), as a root of exercises holding it alone."""
    exercise = discover_exercises([BUNDLED_ROOT])[exercise_id]
    data = exercise.spec.model_dump(exclude_none=True, exclude_defaults=True)
    data["cases"] = [case for case in data["cases"] if not case.get("hidden")]
    data.pop("generators", None)
    for field in ("prompt", "reference", "mistakes", "starter", "warmup"):
        if field in data:
            data[field] = str((exercise.folder / data[field]).resolve())
    (target / exercise_id).mkdir(parents=True)
    (target / exercise_id / SPEC_FILE).write_text(spec_toml(ExerciseSpec.model_validate(data)), encoding="utf-8")
    return target


def _batch(paths: list[Path], root: Path, cache_dir: Path) -> dict[Path, Report]:
    # At the process level, its children forked from a server: the verdicts compared here do not depend
    # on the level, which the sandbox tests cover.
    return grade_as_batch(paths, GradeOptions(cache_dir=cache_dir, exercise_roots=[root], isolation="process"))


def test_a_pack_grades_every_submission_as_the_full_exercise_does(
    packs: _Packs, cache_dir: Path, tmp_path: Path
) -> None:
    paths = sorted(SUBMISSIONS.glob("*.py"))
    by_pack = _batch(paths, packs.root(DROPOUT), cache_dir)
    by_full = _batch(paths, _visible_only(DROPOUT, tmp_path / "visible"), cache_dir)
    for path in paths:
        pack, full = by_pack[path], by_full[path]
        assert [(c.id, c.status) for c in pack.cases] == [(c.id, c.status) for c in full.cases], path.name
        assert [(d.code, d.cases, d.message) for d in pack.diagnoses] == [
            (d.code, d.cases, d.message) for d in full.diagnoses
        ], path.name
        assert (pack.status, pack.score, pack.notes) == (full.status, full.score, []), path.name
        # The stored outputs stand in for the reference wherever the full exercise needed it.
        assert pack.environment.reference_cache == ("off" if full.environment.reference_cache == "off" else "hit")
    # Not vacuous: the examples pass, fail with a catalog's diagnosis, and cannot be graded.
    assert {r.status for r in by_pack.values()} == {"passed", "failed", "error"}
    codes = {d.code for r in by_pack.values() for d in r.diagnoses}
    assert {"deterministic-inverted", "dropout-rng-mismatch", "syntax-error"} <= codes


# --- versions that differ from the stamp -------------------------------------------------------------------

MADE = Stamp(python="3.11.7", jax="0.4.35", jaxlib="0.4.35", flax="0.10.2", numpy="2.1.0", backend="cpu")


@pytest.mark.parametrize(
    ("here", "named", "may_differ"),
    [
        (MADE, [], None),
        (MADE.model_copy(update={"backend": None}), [], None),  # a backend not known is not compared
        (MADE.model_copy(update={"flax": "0.10.3"}), ["flax 0.10.2", "flax 0.10.3"], False),
        (MADE.model_copy(update={"jax": "0.4.36", "jaxlib": "0.4.36"}), ["jax 0.4.35", "jaxlib 0.4.36"], False),
        (MADE.model_copy(update={"backend": "gpu"}), ["backend cpu", "backend gpu"], False),
        (MADE.model_copy(update={"jax": "0.5.0", "jaxlib": "0.5.0"}), ["jax 0.4.35", "jax 0.5.0"], True),
        (MADE.model_copy(update={"jax": "1.4.35"}), ["jax 1.4.35"], True),
        (
            MADE.model_copy(update={"settings": {"JAX_THREEFRY_PARTITIONABLE": "1"}}),
            ["JAX_THREEFRY_PARTITIONABLE unset", "JAX_THREEFRY_PARTITIONABLE=1"],
            True,
        ),
    ],
)
def test_a_stamp_that_differs_is_named_and_a_prng_change_may_change_results(
    here: Stamp, named: list[str], may_differ: bool | None
) -> None:
    notes = stamp_notes(MADE, here)
    if may_differ is None:
        assert notes == []
        return
    assert len(notes) == 1
    assert all(part in notes[0] for part in named), notes[0]
    assert ("results may differ" in notes[0]) is may_differ
    if may_differ:
        assert "To grade as the pack was made, use" in notes[0]


def test_a_pack_graded_with_its_own_versions_has_no_note(toy_pack: Path, cache_dir: Path) -> None:
    report = _grade_toy(toy_pack, cache_dir)
    assert (report.status, report.notes, report.environment.reference_cache) == ("passed", [], "hit")


@pytest.mark.parametrize(
    ("stamp", "may_differ"), [({"jax": "0.1.0"}, True), ({"numpy": "1.0.0"}, False), ({"python": "3.0.1"}, False)]
)
def test_a_stamp_that_differs_gives_a_note_not_a_failure(
    toy_pack: Path, cache_dir: Path, stamp: dict, may_differ: bool
) -> None:
    _edit_stored(toy_pack, lambda data: data["stamp"].update(stamp))
    report = _grade_toy(toy_pack, cache_dir)
    assert report.status == "passed"
    assert len(report.notes) == 1
    name, version = next(iter(stamp.items()))
    assert f"{name} {version}" in report.notes[0]
    assert ("results may differ" in report.notes[0]) is may_differ


def test_a_seed_asked_of_a_pack_is_noted_and_the_visible_cases_graded(toy_pack: Path, cache_dir: Path) -> None:
    report = _grade_toy(toy_pack, cache_dir, seed=5)
    assert report.status == "passed"
    assert [c.id for c in report.cases] == ["first", "second", "third"]
    assert not any(c.fresh for c in report.cases)
    assert len(report.notes) == 1 and report.notes[0].startswith("Seed 5 adds no fresh cases here")


def test_check_grades_a_function_with_a_pack(toy_pack: Path, cache_dir: Path) -> None:
    def scale(factor, x):
        return (np.asarray(x) * np.float32(factor)).astype(np.float32)

    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[toy_pack])
    report = check(TOY, scale, display=False, record=False, options=options)
    assert (report.status, report.score, report.notes) == ("passed", 4.0, [])


# --- a tampered pack is a fault of the exercise -----------------------------------------------------------


def _oversize(data: dict) -> None:
    count = 1_000_001  # one more than the toy's limits.max_output_elements
    data["outputs"]["first"].update(shape=[count], data=base64.b64encode(bytes(4 * count)).decode("ascii"))


TAMPERED = {
    "fingerprint": (lambda data: data.update(fingerprint="0" * 64), "computed for other cases"),
    "oversize-array": (_oversize, "elements exceed the limit of 1000000"),
    "object-dtype": (lambda data: data["outputs"]["first"].update(wire_dtype="|O8"), "is not allowed"),
    "short-data": (lambda data: data["outputs"]["first"].update(shape=[30]), "do not fit shape"),
    "missing-case": (lambda data: data["outputs"].pop("second"), "no output for \\['second'\\]"),
    "not-an-array": (
        lambda data: data["outputs"].update(first={"kind": "object", "type": "str", "repr": "'x'"}),
        "other than an array",
    ),
    "other-exercise": (lambda data: data.update(exercise="other"), "those of 'other'"),
    "unknown-field": (lambda data: data.update(pickle="gASV"), "pickle: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_a_tampered_pack_is_a_fault_not_a_failure(toy_pack: Path, cache_dir: Path, kind: str) -> None:
    change, message = TAMPERED[kind]
    _edit_stored(toy_pack, change)
    with pytest.raises(SpecError, match=message):
        _grade_toy(toy_pack, cache_dir)


def test_stored_outputs_over_the_size_limit_are_refused(
    toy_pack: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "MAX_STORED_BYTES", 64)
    with pytest.raises(GraderError, match="over 64 bytes are refused"):
        _grade_toy(toy_pack, cache_dir)


def test_a_tampered_pack_exits_3_from_the_cli(toy_pack: Path, cache_dir: Path) -> None:
    _edit_stored(toy_pack, lambda data: data.update(fingerprint="0" * 64))
    env = cli_env(cache_dir, GRADER_EXERCISES=str(toy_pack))
    result = subprocess.run(
        [*GRADER, "grade", str(toy_pack.parent / "s.py"), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    assert "computed for other cases" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


# --- the spec field -------------------------------------------------------------------------------------


def _spec_edited(pack: Path, old: str, new: str) -> None:
    path = pack / TOY / SPEC_FILE
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


GENERATOR = '\n[[generators]]\nid = "fresh"\ntitle = "t"\ncount = 1\ninputs = { factor = 1.0, x = [1.0] }\n'


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('expected = "expected.json"\n', 'expected = "expected.json"\nreference = "s.py"\n', "exactly one of"),
        ('expected = "expected.json"\n', "", "exactly one of"),
        ('id = "first"\n', 'id = "first"\nhidden = true\n', "no case is hidden"),
        ("weight = 2.0\n", f"weight = 2.0\n{GENERATOR}", "a generator needs reference"),
        ('expected = "expected.json"\n', 'expected = "nothing.json"\n', "expected: file not found"),
    ],
)
def test_the_expected_field_is_checked_at_load(toy_pack: Path, old: str, new: str, message: str) -> None:
    _spec_edited(toy_pack, old, new)
    with pytest.raises(SpecError, match=message):
        load_exercise(toy_pack / TOY)


# --- grader release ---------------------------------------------------------------------------------------


def _toy_copy(tmp_path: Path, *, warmup: str | None = None, analysis: str | None = None) -> Path:
    """A copy of the toy exercise (the root that holds it), with a warm-up or a catalog with an analysis."""
    folder = copy_toy_exercise(tmp_path)
    added = []
    if warmup is not None:
        (folder / "warmup.py").write_text(warmup, encoding="utf-8")
        added.append('warmup = "warmup.py"\n')
    if analysis is not None:
        (folder / "mistakes.toml").write_text('analysis = "analysis.py"\n', encoding="utf-8")
        (folder / "analysis.py").write_text(analysis, encoding="utf-8")
        added.append('mistakes = "mistakes.toml"\n')
    spec = folder / SPEC_FILE
    spec.write_text(spec.read_text().replace('preload = ["numpy"]\n', 'preload = ["numpy"]\n' + "".join(added)))
    return folder.parent


@pytest.mark.parametrize("leaks", [True, False])
def test_a_warmup_that_holds_a_line_of_the_reference_is_left_out(tmp_path: Path, cache_dir: Path, leaks: bool) -> None:
    body = TOY_REFERENCE_LINE if leaks else "np.asarray(x) * 0"
    root = _toy_copy(
        tmp_path, warmup=f"import numpy as np\n\n\ndef warm_up(calls):\n    for factor, x in calls:\n        {body}\n"
    )
    (made,) = release([TOY], tmp_path / "out", roots=[root], cache_dir=cache_dir)
    pack = load_exercise(tmp_path / "out" / TOY)
    assert (pack.folder / "warmup.py").exists() is not leaks
    assert (pack.spec.warmup is None) is leaks
    assert bool(made.left_out) is leaks and all("warm-up" in item for item in made.left_out)


def test_an_analysis_that_holds_a_line_of_the_reference_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    analysis = f"import numpy as np\n\n\ndef analyze(observations, *, rtol, atol):\n    {TOY_REFERENCE_LINE}\n"
    root = _toy_copy(tmp_path, analysis=analysis)
    with pytest.raises(SpecError, match="holds lines of the reference"):
        release([TOY], tmp_path / "out", roots=[root], cache_dir=cache_dir)
    assert not (tmp_path / "out").exists()  # nothing is written before every pack is made


def test_release_refuses_a_non_empty_folder_unless_forced_and_then_replaces_the_pack(
    tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the course's own file")
    with pytest.raises(UsageError, match="is not empty"):
        release([TOY], out, roots=[TOY_EXERCISES], cache_dir=cache_dir)
    release([TOY], out, roots=[TOY_EXERCISES], cache_dir=cache_dir, force=True)
    (out / TOY / "stale.py").write_text("left from an earlier pack")
    release([TOY], out, roots=[TOY_EXERCISES], cache_dir=cache_dir, force=True)
    assert sorted(p.name for p in (out / TOY).iterdir()) == [
        "exercise.toml",
        "expected.json",
        "prompt.md",
        "starter.py",
    ]
    assert (out / "notes.txt").exists()


def test_release_refuses_a_pack_and_an_unknown_exercise(toy_pack: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a learner pack already"):
        release([TOY], tmp_path / "again", roots=[toy_pack])
    with pytest.raises(UsageError, match="unknown exercise 'nope'"):
        release(["nope"], tmp_path / "none", roots=[TOY_EXERCISES])


def test_the_release_command(tmp_path: Path, cache_dir: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES))
        return subprocess.run([*GRADER, *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)

    out = tmp_path / "packs"
    first = run("release", TOY, "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert f"Wrote {out / TOY}: 3 visible cases" in first.stdout
    assert load_exercise(out / TOY).expected_path == (out / TOY / "expected.json").resolve()
    again = run("release", TOY, "--out", str(out))
    assert again.returncode == 2 and "is not empty; pass --force" in again.stderr
    assert run("release", TOY, "--out", str(out), "--force").returncode == 0
    unknown = run("release", "nope", "--out", str(tmp_path / "other"))
    assert unknown.returncode == 2 and "unknown exercise 'nope'" in unknown.stderr
    assert not (tmp_path / "other").exists()
    helped = run("release", "--help")
    assert helped.returncode == 0 and "Usage" in helped.stdout


# --- the pack's spec and catalog as TOML ------------------------------------------------------------------

SPEC_FOLDERS = [BUNDLED_ROOT / name for name in BUNDLED] + [
    TOY_EXERCISES / TOY,
    FIXTURES / "tree-exercises" / "toy-stats",
]


@pytest.mark.parametrize("folder", SPEC_FOLDERS, ids=[f.name for f in SPEC_FOLDERS])
def test_specs_and_catalogs_written_as_toml_read_back_the_same(folder: Path) -> None:
    exercise = load_exercise(folder)
    assert ExerciseSpec.model_validate(tomllib.loads(spec_toml(exercise.spec))) == exercise.spec
    assert Catalog.model_validate(tomllib.loads(catalog_toml(exercise.catalog))) == exercise.catalog


def test_toml_text_writes_what_tomllib_reads() -> None:
    data = {
        "title": 'a "quoted" \\ back\nslash\ttab\x7fdel\u2028sep \U0001f600 é',
        "a b": 1,
        "big": 2**63 - 1,
        "small": 1e-05,
        "large": 1e16,
        "infinite": [math.inf, -math.inf],
        "mixed": [1.5, "x", True, False],
        "long": [f"item {n} " * 5 for n in range(8)],
        "table": {"k": {"nested": [1, 2], "empty": {}}, "other key": "v"},
        "items": [{"id": "a", "v": [{"x": 1}] * 30}, {"id": "b"}],
    }
    text = toml_text(data, comment="written by a test\nover two lines")
    assert text.startswith("# written by a test\n# over two lines\n")
    assert tomllib.loads(text) == data
    assert math.isnan(tomllib.loads(toml_text({"n": math.nan}))["n"])

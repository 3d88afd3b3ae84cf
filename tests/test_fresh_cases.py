"""Fresh cases (``--seed N``): generators in the spec, cases made deterministically from a seed, and a
submission that hard-codes the fixed cases' outputs failing them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from grader.errors import UsageError
from grader.exercise.cases import build_cases, cases_fingerprint, checked_seed
from grader.exercise.spec import MAX_SEED, ArrayFill, Exercise, ExerciseSpec, load_exercise
from grader.learner.notebook import check
from grader.pipeline.grading import GradeOptions, grade_file, trusted_env, wire_cases
from grader.pipeline.reference import run_reference
from grader.render.terminal import make_console, render_report
from grader.report.schema import Report
from tests.conftest import ROOT, TOY_EXERCISES, cli_env, copy_toy_exercise

BUNDLED = ROOT / "exercises" / "train-eval-dropout"

TOY_GENERATOR = """
[[generators]]
id = "fresh"
title = "A random factor and vector"
count = 3
weight = 2
[generators.inputs]
factor = { between = [-4.0, 4.0] }
x = { fill = ["normal", "uniform"], shape = [{ between = [1, 6] }], scale = { one_of = [1.0, -100.0] } }
"""

TOY_CORRECT = (
    "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype(np.float32)\n"
)


def _toy_with_generator(tmp_path: Path) -> Path:
    """A copy of the toy exercise with a generator; returns the folder that holds the exercises."""
    folder = copy_toy_exercise(tmp_path)
    spec = folder / "exercise.toml"
    spec.write_text(spec.read_text() + TOY_GENERATOR)
    return folder.parent


def _fresh(cases: list) -> list:
    return [c for c in cases if c.fresh]


# --- cases from a seed -------------------------------------------------------------------------------


def test_no_seed_gives_only_the_fixed_cases() -> None:
    exercise = load_exercise(BUNDLED)
    cases = build_cases(exercise)
    assert len(cases) == 20 and not _fresh(cases)
    assert len(exercise.spec.generators) == 1


def test_fresh_cases_follow_the_fixed_ones_with_ids_titles_and_expansion() -> None:
    exercise = load_exercise(BUNDLED)
    fixed = build_cases(exercise)
    cases = build_cases(exercise, 31)
    assert cases_fingerprint(cases[: len(fixed)]) == cases_fingerprint(fixed)
    fresh = cases[len(fixed) :]
    assert [c.id for c in fresh] == [f"fresh-{k}/{mode}" for k in range(1, 5) for mode in ("train", "eval")]
    assert all(c.fresh and not c.hidden and c.weight == 1 for c in fresh)
    assert all("seed 31" in c.title for c in fresh)
    assert [c.args[2] for c in fresh] == [1.0, 0.0] * 4  # expanded over train exactly as the fixed cases
    for train, evaluation in zip(fresh[::2], fresh[1::2], strict=True):
        assert train.args[0] == evaluation.args[0] and np.array_equal(train.args[1], evaluation.args[1])
    for case in fresh:
        seed, x, _ = case.args
        assert isinstance(seed, float) and seed == int(seed) and 0 <= seed <= 2**31 - 1
        assert x.dtype == np.float32 and x.ndim == 1 and 1 <= x.size <= 128


def test_the_same_seed_gives_the_same_cases_and_another_seed_others() -> None:
    exercise = load_exercise(BUNDLED)
    first, again, other = (_fresh(build_cases(exercise, seed)) for seed in (5, 5, 6))
    assert cases_fingerprint(first) == cases_fingerprint(again)
    for a, b in zip(first, again, strict=True):
        assert a.args[0] == b.args[0] and np.array_equal(a.args[1], b.args[1])
    assert cases_fingerprint(first) != cases_fingerprint(other)
    assert {c.args[0] for c in first}.isdisjoint({c.args[0] for c in other})
    assert len({c.args[0] for c in first}) == 4  # each fresh case draws a seed of its own


def test_a_case_depends_only_on_seed_generator_and_index(tmp_path: Path) -> None:
    """More cases, or another generator after it, leave a generator's earlier cases as they were."""
    root = _toy_with_generator(tmp_path)
    spec = root / "toy-scale" / "exercise.toml"
    before = _fresh(build_cases(load_exercise(root / "toy-scale"), 77))
    spec.write_text(spec.read_text().replace("count = 3", "count = 5") + TOY_GENERATOR.replace('"fresh"', '"more"'))
    after = _fresh(build_cases(load_exercise(root / "toy-scale"), 77))
    assert [c.id for c in after] == [f"fresh-{k}" for k in range(1, 6)] + [f"more-{k}" for k in range(1, 4)]
    assert cases_fingerprint(after[:3]) == cases_fingerprint(before)
    assert cases_fingerprint(after[5:]) != cases_fingerprint(before)  # same recipe, another position


@pytest.mark.parametrize("seed", [0, 1, 2**31, MAX_SEED, np.int64(3)])
def test_seeds_from_zero_to_2_63_minus_1_are_accepted(seed: int) -> None:
    assert checked_seed(seed) == int(seed)
    assert len(_fresh(build_cases(load_exercise(BUNDLED), seed))) == 8


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, True, 1.5, "3"])
def test_other_seeds_are_usage_errors(seed: object) -> None:
    with pytest.raises(UsageError, match="a seed is a whole number from 0 to"):
        build_cases(load_exercise(BUNDLED), seed)  # type: ignore[arg-type]


# --- every recipe form -------------------------------------------------------------------------------

_PLACEHOLDER = {"float": 0.0, "int": 0, "bool": False, "array": [1.0]}


def _exercise(parameters: dict[str, str], inputs: dict, *, count: int = 12, **generator: object) -> Exercise:
    params = [
        {"name": name, "type": kind, **({"dtype": "float32"} if kind == "array" else {})}
        for name, kind in parameters.items()
    ]
    data = {
        "id": "recipes",
        "title": "Recipes",
        "prompt": "prompt.md",
        "reference": "reference.py",
        "entry_point": {"name": "f", "parameters": params},
        "cases": [
            {"id": "fixed", "title": "A fixed case", "inputs": {n: _PLACEHOLDER[k] for n, k in parameters.items()}}
        ],
        "generators": [{"id": "gen", "title": "Generated", "count": count, "inputs": inputs, **generator}],
    }
    return Exercise(spec=ExerciseSpec.model_validate(data), folder=Path("/nonexistent"))


def _values(exercise: Exercise, name: str, seed: int = 1) -> list:
    at = [p.name for p in exercise.spec.entry_point.parameters].index(name)
    return [case.args[at] for case in _fresh(build_cases(exercise, seed))]


def test_literal_recipes_give_the_same_value_every_time() -> None:
    exercise = _exercise(
        {"a": "float", "n": "int", "flag": "bool", "x": "array"}, {"a": 2.5, "n": 3, "flag": True, "x": [1.0, -2.0]}
    )
    assert _values(exercise, "a") == [2.5] * 12
    assert _values(exercise, "n") == [3] * 12 and all(type(v) is int for v in _values(exercise, "n"))
    assert _values(exercise, "flag") == [True] * 12
    assert all(np.array_equal(x, np.array([1.0, -2.0], np.float32)) for x in _values(exercise, "x"))


def test_between_whole_bounds_draw_whole_numbers_of_the_parameters_type() -> None:
    exercise = _exercise({"a": "float", "n": "int"}, {"a": {"between": [0, 3]}, "n": {"between": [-2, 2]}}, count=60)
    floats, ints = _values(exercise, "a"), _values(exercise, "n")
    assert all(type(v) is float and v == int(v) for v in floats) and set(floats) == {0.0, 1.0, 2.0, 3.0}
    assert all(type(v) is int for v in ints) and set(ints) == {-2, -1, 0, 1, 2}  # both bounds included


def test_between_float_bounds_draw_uniform_floats() -> None:
    values = _values(_exercise({"a": "float"}, {"a": {"between": [-1.0, 1.5]}}), "a")
    assert all(-1.0 <= v <= 1.5 for v in values)
    assert len(set(values)) == len(values) and any(v != int(v) for v in values)


def test_one_of_chooses_among_the_values() -> None:
    exercise = _exercise(
        {"a": "float", "flag": "bool"}, {"a": {"one_of": [0.5, -7.0]}, "flag": {"one_of": [True, False]}}, count=40
    )
    assert set(_values(exercise, "a")) == {0.5, -7.0}
    assert set(_values(exercise, "flag")) == {True, False}


def test_a_fixed_array_fill_is_the_same_for_every_seed() -> None:
    exercise = _exercise({"x": "array"}, {"x": {"fill": "normal", "shape": [5], "seed": 9}}, count=2)
    arrays = _values(exercise, "x", seed=1) + _values(exercise, "x", seed=2)
    expected = np.random.default_rng(9).standard_normal(5).astype(np.float32)
    assert all(np.array_equal(x, expected) for x in arrays)


def test_an_array_generator_draws_fill_shape_and_numbers() -> None:
    recipe = {
        "fill": ["full", "arange"],
        "shape": [2, {"between": [1, 4]}],
        "value": {"between": [10.0, 20.0]},
        "scale": {"one_of": [1.0, -1.0]},
        "offset": {"between": [0, 0]},
    }
    arrays = _values(_exercise({"x": "array"}, {"x": recipe}, count=40), "x")
    assert all(x.dtype == np.float32 and x.shape[0] == 2 and 1 <= x.shape[1] <= 4 for x in arrays)
    assert {x.shape[1] for x in arrays} == {1, 2, 3, 4}
    full = [x for x in arrays if np.all(x == x.flat[0]) and abs(x.flat[0]) >= 10]
    ramps = [x for x in arrays if np.array_equal(np.abs(x).reshape(-1), np.arange(x.size))]
    assert full and ramps and len(full) + len(ramps) == len(arrays)
    assert {np.sign(x.flat[0]) for x in full} == {1.0, -1.0}
    assert len({float(abs(x.flat[0])) for x in full}) == len(full)  # the value is drawn for each case


def test_an_array_generator_without_a_seed_gives_each_case_its_own_values() -> None:
    arrays = _values(_exercise({"x": "array"}, {"x": {"fill": "uniform", "shape": [8]}}, count=5), "x")
    assert len({x.tobytes() for x in arrays}) == 5


def test_generated_cases_become_the_forms_fixed_cases_use() -> None:
    from grader.exercise.cases import fresh_cases

    exercise = load_exercise(BUNDLED)
    (first, *_) = fresh_cases(exercise, 12)
    assert isinstance(first.inputs["seed"], float) and isinstance(first.inputs["x"], ArrayFill)
    assert first.inputs["x"].fill in ("normal", "uniform") and first.inputs["x"].scale in (
        0.01,
        1.0,
        100.0,
        -1.0,
        -1000.0,
    )
    assert "train" not in first.inputs  # the expansion adds it, as for a fixed case


@pytest.mark.parametrize(
    ("parameters", "inputs", "message"),
    [
        ({"n": "int"}, {"n": {"between": [0.5, 2.0]}}, "'n' is an int: between [0.5, 2.0] needs whole-number bounds"),
        ({"n": "int"}, {"n": {"one_of": [1, 2.5]}}, "'n' is an int: one_of holds 2.5"),
        ({"flag": "bool"}, {"flag": {"between": [0, 1]}}, "'flag' is a bool: draw it with one_of"),
        ({"flag": "bool"}, {"flag": {"one_of": [1, 0]}}, "'flag' is a bool: one_of holds 1"),
        ({"a": "float"}, {"a": {"one_of": [True]}}, "'a' is a float: one_of holds True"),
        ({"a": "float"}, {"a": {"fill": "ones", "shape": [2]}}, "'a' is a float, not an array"),
        ({"x": "array"}, {"x": {"one_of": [1.0]}}, "'x' is an array"),
        ({"n": "int"}, {"n": {"between": [0, 2**70]}}, "generator 'gen' cannot make its case 1 (seed 0)"),
        (
            {"x": "array"},
            {"x": {"fill": "ones", "shape": [{"between": [1, 2000]}, {"between": [1, 2000]}]}},
            "'x' can draw 4000000 elements, more than limits.max_output_elements (1000000) for some seed",
        ),
    ],
)
def test_recipes_that_cannot_make_the_parameters_type_are_refused(parameters: dict, inputs: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _exercise(parameters, inputs)
    assert message in str(info.value)


# --- grading with a seed -----------------------------------------------------------------------------


def _render(report: Report) -> str:
    buffer = io.StringIO()
    render_report(report, make_console(color=False, file=buffer, width=100))
    return buffer.getvalue()


def test_a_seed_reaches_the_report_the_terminal_and_the_cache(tmp_path: Path) -> None:
    root = _toy_with_generator(tmp_path)
    path = tmp_path / "submission.py"
    path.write_text(TOY_CORRECT)

    def grade(seed: int | None) -> Report:
        options = GradeOptions(cache_dir=tmp_path / "cache", exercise_roots=[root], seed=seed)
        return grade_file(path, exercise_id="toy-scale", options=options)

    first, again, other, unseeded = grade(11), grade(11), grade(12), grade(None)
    assert [r.environment.reference_cache for r in (first, again, other)] == ["miss", "hit", "miss"]
    assert first.status == "passed" and first.seed == 11 and unseeded.seed is None
    assert [c.id for c in first.cases if c.fresh] == ["fresh-1", "fresh-2", "fresh-3"]
    assert not any(c.fresh for c in unseeded.cases)
    assert first.max_score == unseeded.max_score + 3 * 2  # three fresh cases of weight 2
    assert [c.inputs for c in first.cases] == [c.inputs for c in again.cases]
    assert [c.inputs for c in first.cases if c.fresh] != [c.inputs for c in other.cases if c.fresh]
    assert "3 fresh cases from seed 11 were added" in _render(first)
    assert "fresh cases" not in _render(unseeded)
    assert Report.model_validate_json(first.model_dump_json()).seed == 11


def test_a_seed_for_an_exercise_without_generators_says_so(cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "submission.py"
    path.write_text(TOY_CORRECT)
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[TOY_EXERCISES], seed=4)
    report = grade_file(path, exercise_id="toy-scale", options=options)
    assert report.status == "passed" and report.seed == 4 and not any(c.fresh for c in report.cases)
    assert "4, but this exercise has no generators: no fresh cases were added" in _render(report)


def test_check_in_a_notebook_takes_a_seed(tmp_path: Path) -> None:
    root = _toy_with_generator(tmp_path)
    options = GradeOptions(cache_dir=tmp_path / "cache", exercise_roots=[root])

    def hard_coded(factor: float, x: np.ndarray) -> np.ndarray:
        known = {2.0: 2.0, 3.0: 3.0, -1.0: -1.0}  # the fixed cases' factors, and nothing else
        return (np.asarray(x) * np.float32(known.get(float(factor), 0.0))).astype(np.float32)

    plain = check("toy-scale", hard_coded, display=False, record=False, options=options)
    seeded = check("toy-scale", hard_coded, display=False, record=False, options=options, seed=8)
    assert plain.status == "passed" and plain.seed is None
    assert seeded.status == "failed" and seeded.seed == 8
    assert {c.id for c in seeded.cases if c.status != "passed"} == {"fresh-1", "fresh-2", "fresh-3"}


def _hard_coded_submission(exercise: Exercise, cache_dir: Path) -> str:
    """A submission that returns the reference's outputs for every fixed case, looked up by its inputs."""
    cases = build_cases(exercise)
    options = GradeOptions(cache_dir=cache_dir)
    expected = run_reference(
        exercise, cases, wire_cases(exercise, cases), env=trusted_env(options), cache_dir=cache_dir
    )
    table = {}
    for case in cases:
        seed, x, train = case.args
        key = (float(seed), tuple(round(float(v), 4) for v in x), float(train))
        table[key] = [float(v) for v in expected.outputs[case.id]]
    assert len(table) == len(cases)
    return (
        "import numpy as np\n\n"
        f"EXPECTED = {table!r}\n\n\n"
        "def model_train_eval_forward(seed, x, train):\n"
        "    key = (float(seed), tuple(round(float(v), 4) for v in np.asarray(x)), float(train))\n"
        "    if key in EXPECTED:\n"
        "        return np.asarray(EXPECTED[key], dtype=np.float32)\n"
        "    return np.full(np.shape(x), 1234.5, dtype=np.float32)\n"
    )


def test_outputs_hard_coded_for_the_fixed_cases_fail_the_fresh_ones(cache_dir: Path, tmp_path: Path) -> None:
    exercise = load_exercise(BUNDLED)
    path = tmp_path / "hard_coded.py"
    path.write_text(_hard_coded_submission(exercise, cache_dir))

    plain = grade_file(path, options=GradeOptions(cache_dir=cache_dir))
    assert plain.status == "passed" and plain.score == plain.max_score == 22

    seeded = grade_file(path, options=GradeOptions(cache_dir=cache_dir, seed=2024))
    assert seeded.status == "failed" and seeded.seed == 2024
    assert seeded.score == 22 and seeded.max_score == 30
    fresh = [c for c in seeded.cases if c.fresh]
    assert len(fresh) == 8 and all(c.status == "failed" for c in fresh)
    assert all(c.comparison and c.comparison.kind == "values-mismatch" for c in fresh)
    assert all(c.status == "passed" for c in seeded.cases if not c.fresh)
    first = seeded.diagnoses[0]
    assert first.code == "fails-fresh-cases" and first.cases == [c.id for c in fresh]


@pytest.mark.parametrize(("name", "code"), [("correct.py", None), ("wrong_inverted_flag.py", "deterministic-inverted")])
def test_fails_fresh_cases_is_only_for_what_passes_every_fixed_case(grade_seeded, name: str, code: str | None) -> None:
    report = grade_seeded(ROOT / "submissions" / name, 7)
    assert "fails-fresh-cases" not in [d.code for d in report.diagnoses]
    assert (report.diagnoses[0].code if report.diagnoses else None) == code
    assert any(c.fresh for c in report.cases)


@pytest.fixture
def grade_seeded(cache_dir: Path):
    def _grade(path: Path, seed: int) -> Report:
        return grade_file(path, options=GradeOptions(cache_dir=cache_dir, seed=seed))

    return _grade


def test_hidden_cases_show_neither_inputs_nor_expected_values(grade) -> None:
    report = grade(ROOT / "submissions" / "wrong_inverted_flag.py")
    hidden = [c for c in report.cases if c.hidden]
    assert {c.id for c in hidden} == {"large-64/train", "large-64/eval", "seed-large/train", "seed-large/eval"}
    assert all(set(c.inputs.values()) == {"hidden"} for c in hidden)
    failed = [c for c in hidden if c.status == "failed"]
    assert failed and all(c.comparison and not c.comparison.rows and c.comparison.max_abs_error is None for c in failed)
    assert all(c.inputs["x"] != "hidden" for c in report.cases if not c.hidden)


def test_what_a_hidden_case_prints_is_not_shown(cache_dir: Path, tmp_path: Path) -> None:
    folder = copy_toy_exercise(tmp_path)
    spec = folder / "exercise.toml"
    spec.write_text(spec.read_text().replace('id = "third"\n', 'id = "third"\nhidden = true\n'))
    path = tmp_path / "prints.py"
    path.write_text(
        "print('at import')\n" + TOY_CORRECT.replace("    return", "    print('x is', list(x))\n    return")
    )
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[folder.parent])
    report = grade_file(path, exercise_id="toy-scale", options=options)
    by_id = {c.id: c for c in report.cases}
    assert by_id["third"].hidden and by_id["third"].status == "passed"
    assert "x is" not in by_id["third"].output.stdout.text and by_id["third"].output.stdout.size > 0
    assert "x is" in by_id["first"].output.stdout.text  # visible cases show what they printed
    assert "at import" in report.output.stdout.text


def test_a_hidden_case_does_not_show_what_its_exception_or_return_value_says(cache_dir: Path, tmp_path: Path) -> None:
    folder = copy_toy_exercise(tmp_path)
    spec = folder / "exercise.toml"
    spec.write_text(spec.read_text().replace('id = "third"\n', 'id = "third"\nhidden = true\n'))
    options = GradeOptions(cache_dir=cache_dir, exercise_roots=[folder.parent])
    for body, leak in (
        ("raise ValueError('X' + 'IS' + repr(list(x)))", "XIS"),
        ("return 'X' + 'IS' + repr(list(x))", "XIS"),
    ):
        path = tmp_path / "leaks.py"
        path.write_text(f"def scale(factor, x):\n    {body}\n")
        report = grade_file(path, exercise_id="toy-scale", options=options)
        by_id = {c.id: c for c in report.cases}
        assert leak in by_id["first"].message or (by_id["first"].error and leak in by_id["first"].error.message)
        hidden = by_id["third"]
        assert leak not in hidden.model_dump_json(), body
        assert all(leak not in d.model_dump_json() or "third" not in d.cases[:1] for d in report.diagnoses)


# --- the command line ---------------------------------------------------------------------------------


def _cli(tmp_path: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(tmp_path / "cache", GRADER_EXERCISES=str(root))
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def test_grade_seed_on_the_command_line(tmp_path: Path) -> None:
    root = _toy_with_generator(tmp_path)
    path = tmp_path / "submission.py"
    path.write_text(TOY_CORRECT)
    result = _cli(tmp_path, root, "grade", str(path), "--seed", "5", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["seed"] == 5
    assert [c["id"] for c in report["cases"] if c["fresh"]] == ["fresh-1", "fresh-2", "fresh-3"]
    rich = _cli(tmp_path, root, "grade", str(path), "--seed", "5")
    assert rich.returncode == 0 and "3 fresh cases from seed 5 were added" in rich.stdout
    again = json.loads(_cli(tmp_path, root, "grade", str(path), "--seed", "5", "-f", "json").stdout)
    assert [c["inputs"] for c in again["cases"]] == [c["inputs"] for c in report["cases"]]


@pytest.mark.parametrize("seed", ["-1", "9223372036854775808", "abc"])
def test_a_bad_seed_is_a_usage_error(tmp_path: Path, seed: str) -> None:
    result = _cli(tmp_path, TOY_EXERCISES, "grade", str(tmp_path / "any.py"), "--seed", seed)
    assert result.returncode == 2 and "--seed" in result.stderr


@pytest.mark.parametrize("command", ["grade", "watch"])
def test_seed_is_documented_in_the_help(tmp_path: Path, command: str) -> None:
    result = _cli(tmp_path, TOY_EXERCISES, command, "--help")
    assert result.returncode == 0 and "--seed" in result.stdout and "hard-coded" in result.stdout

"""Loading exercise specs: the bundled one is valid, malformed ones are refused with file and field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from grader.errors import SpecError, UsageError
from grader.exercise.cases import build_cases, cases_fingerprint
from grader.exercise.spec import discover_exercises, get_exercise, load_exercise
from tests.conftest import ROOT, TOY_EXERCISES, copy_toy_exercise

BUNDLED = ROOT / "exercises" / "train-eval-dropout"


def test_bundled_exercise_loads() -> None:
    exercise = load_exercise(BUNDLED)
    assert exercise.id == "train-eval-dropout"
    assert exercise.spec.entry_point.signature == "model_train_eval_forward(seed, x, train)"
    assert exercise.reference_path == (ROOT / "reference" / "train_eval_dropout.py").resolve()
    assert "deterministic" in exercise.prompt_text()
    assert exercise.spec.tolerance.rtol == 1e-5 and exercise.spec.tolerance.atol == 1e-6
    assert exercise.spec.hints


def test_discovery_finds_the_bundled_exercises() -> None:
    bundled = {p.parent.name for p in (ROOT / "exercises").glob("*/exercise.toml")}
    assert "train-eval-dropout" in bundled
    assert sorted(discover_exercises()) == sorted(bundled)
    assert list(discover_exercises([TOY_EXERCISES])) == ["toy-scale"]


def test_unknown_exercise_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown exercise 'nope'"):
        get_exercise("nope")


def _copy_toy(tmp_path: Path) -> Path:
    return copy_toy_exercise(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('name = "scale"', 'nam = "scale"', "entry_point.nam"),
        ("case_timeout_s = 3", "case_timeout_s = -3", "limits.case_timeout_s"),
        ('fill = "ones"', 'fill = "sevens"', "cases.0.inputs"),
        ('id = "second"', 'id = "first"', "used twice"),
        ("inputs = { factor = 2.0, ", "inputs = { ", "expected exactly"),
        ('type = "float" }', 'type = "complex" }', "entry_point.parameters.0.type"),
        ('prompt = "prompt.md"', 'prompt = "missing.md"', "prompt: file not found"),
        ('reference = "../../reference/toy_scale.py"', 'reference = "nowhere.py"', "reference: file not found"),
        ('id = "toy-scale"', 'id = "other-name"', "differs from its folder name"),
        ('title = "Scale a vector"', 'title = "Scale a vector', "not valid TOML"),
    ],
)
def test_malformed_spec_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    folder = _copy_toy(tmp_path)
    spec = folder / "exercise.toml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_exercise(folder)
    assert str(spec) in str(info.value)
    assert field in str(info.value)


def test_cases_follow_the_exercise() -> None:
    cases = build_cases(load_exercise(BUNDLED))
    assert len(cases) >= 16
    first = cases[0]
    assert first.id == "worked-example/train"
    seed, x, train = first.args
    assert seed == 0.0 and isinstance(seed, float)
    assert x.dtype == np.float32 and x.shape == (4,) and np.all(x == 1)
    assert train == 1.0 and cases[1].args[2] == 0.0
    lengths = {c.args[1].shape[0] for c in cases}
    assert 1 in lengths and max(lengths) >= 64 and len(lengths - {4}) >= 3
    assert all(isinstance(c.args[0], float) and isinstance(c.args[2], float) for c in cases)
    assert all(c.args[1].ndim == 1 and c.args[1].dtype == np.float32 for c in cases)
    for base in {c.id.split("/")[0] for c in cases}:
        assert {f"{base}/train", f"{base}/eval"} <= {c.id for c in cases}
    xs = [c.args[1] for c in cases]
    assert any(np.all(x == 1) for x in xs), "ones"
    assert any(np.all(x == 0) for x in xs), "zeros"
    assert any(np.all(x < 0) and x.size > 1 for x in xs), "negatives"
    assert any(np.abs(x).max() > 1000 for x in xs), "large magnitude"
    assert any(x.size >= 16 and len(np.unique(x)) == x.size for x in xs), "random values"
    assert len({c.args[0] for c in cases}) >= 5, "several seeds"


def test_cases_are_deterministic() -> None:
    exercise = load_exercise(BUNDLED)
    assert cases_fingerprint(build_cases(exercise)) == cases_fingerprint(build_cases(exercise))


def test_case_weights_make_a_maximum() -> None:
    cases = build_cases(load_exercise(BUNDLED))
    assert sum(c.weight for c in cases) > len(cases)  # the worked example counts double


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('dtype = "float32"', 'dtype = "flaot32"', "not a numpy dtype"),
        ('dtype = "float32"', 'dtype = "U4"', "not numeric"),
        ("inputs = { factor = 2.0, ", "inputs = { factor = [2.0], ", "is a float, not an array"),
        ("capture_bytes", "capture_bytes", ""),
    ],
)
def test_values_the_engine_cannot_use_are_refused_at_load(tmp_path: Path, old: str, new: str, field: str) -> None:
    folder = _copy_toy(tmp_path)
    spec = folder / "exercise.toml"
    text = spec.read_text()
    if old == "capture_bytes":
        text = text.replace("[limits]\n", "[limits]\ncapture_bytes = 10000000\n")
        field = "limits.capture_bytes"
    else:
        assert old in text
        text = text.replace(old, new, 1)
    spec.write_text(text)
    with pytest.raises(SpecError) as info:
        load_exercise(folder)
    assert str(spec) in str(info.value) and field in str(info.value)


def test_unreadable_prompt_is_a_spec_error(tmp_path: Path) -> None:
    folder = _copy_toy(tmp_path)
    (folder / "prompt.md").write_bytes(b"\xff\xfe bad")
    with pytest.raises(SpecError, match="prompt"):
        load_exercise(folder)


def test_missing_exercise_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="exercise folder not found"):
        discover_exercises([tmp_path / "nowhere"])


X_RECIPE = '{ fill = ["normal", "uniform"], shape = [{ between = [1, 8] }], scale = { one_of = [1.0, -10.0] } }'
GENERATOR = (
    """
[[generators]]
id = "fresh"
title = "Fresh"
count = 3
[generators.inputs]
factor = { between = [-2.0, 2.0] }
x = """
    + X_RECIPE
    + "\n"
)


def test_a_spec_with_a_generator_loads(tmp_path: Path) -> None:
    folder = _copy_toy(tmp_path)
    spec = folder / "exercise.toml"
    spec.write_text(spec.read_text() + GENERATOR)
    (generator,) = load_exercise(folder).spec.generators
    assert (generator.id, generator.count, generator.weight, generator.hidden) == ("fresh", 3, 1.0, False)
    assert sorted(generator.inputs) == ["factor", "x"]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("count = 3", "count = 0", "generators.0.count"),
        ("count = 3", "count = 101", "generators.0.count"),
        ("count = 3", "count = 3\nweight = 0", "generators.0.weight"),
        ("count = 3", "count = 3\nextra = 1", "generators.0.extra"),
        ('id = "fresh"', 'id = "Fresh!"', "generators.0.id"),
        ('title = "Fresh"\n', "", "generators.0.title"),
        ("factor = { between = [-2.0, 2.0] }\n", "", "generator 'fresh' gives recipes for ['x'], expected exactly"),
        ("[-2.0, 2.0]", "[2.0, -2.0]", "the lower bound is above the upper one"),
        ("[-2.0, 2.0]", "[-2.0, 0.0, 2.0]", "generators.0.inputs.factor.between.between"),
        ("[-2.0, 2.0]", '[-2.0, "2"]', "generators.0.inputs.factor.between.between.1"),
        ("between = [-2.0, 2.0]", "one_of = []", "generators.0.inputs.factor.one_of.one_of"),
        ("between = [-2.0, 2.0]", "betwen = [-2.0, 2.0]", "generators.0.inputs.factor.array"),
        ('"uniform"]', '"sevens"]', "generators.0.inputs.x.array.fill.list.1: Input should be 'ones'"),
        ("one_of = [1.0, -10.0]", "one_of = [true]", "scale: one_of [True] holds a bool, not a number"),
        ("[1, 8]", "[1.5, 8.0]", "shape[0]: between [1.5, 8.0] must hold whole numbers"),
        ("[1, 8]", "[1, 2000000]", "shape[0]: between [1, 2000000] must hold whole numbers from 0 to 1000000"),
        ("{ one_of = [1.0, -10.0] }", "{ one_off = [1.0] }", "expected a number, { between = [lo, hi] }"),
        ("{ between = [-2.0, 2.0] }", '{ fill = "ones", shape = [2] }', "'factor' is a float, not an array"),
        (X_RECIPE, "{ one_of = [1.0] }", "'x' is an array"),
        ("[-2.0, 2.0]", "[0, 1180591620717411303424]", "generator 'fresh' cannot make its case 1 (seed 0)"),
        ('id = "fresh"', 'id = "first"', "generator 'first' makes case ids that are used already"),
    ],
)
def test_malformed_generator_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    folder = _copy_toy(tmp_path)
    spec = folder / "exercise.toml"
    text = spec.read_text() + GENERATOR
    if "used already" in field:  # a fixed case named like a generated one
        text = text.replace('id = "second"', 'id = "first-2"', 1)
    assert old in text.split("[[generators]]")[1]
    head, generator = text.split("[[generators]]")
    spec.write_text(head + "[[generators]]" + generator.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_exercise(folder)
    assert str(spec) in str(info.value)
    assert field in str(info.value)


def test_generated_cases_are_expanded_like_fixed_ones(tmp_path: Path) -> None:
    folder = _copy_toy(tmp_path)
    spec = folder / "exercise.toml"
    text = re.sub(r"inputs = \{ factor = [-0-9.]+, ", "inputs = { ", spec.read_text())  # the expansion gives it
    expansion = '[expand.factor]\nvalues = [1.0, -1.0]\nlabels = ["plus", "minus"]\n\n[[cases]]'
    generator = GENERATOR.replace("factor = { between = [-2.0, 2.0] }\n", "")
    spec.write_text(text.replace("[[cases]]", expansion, 1) + generator)
    fresh = [c for c in build_cases(load_exercise(folder), 3) if c.fresh]
    assert [c.id for c in fresh] == [f"fresh-{k}/{label}" for k in (1, 2, 3) for label in ("plus", "minus")]
    assert [c.args[0] for c in fresh] == [1.0, -1.0] * 3
    assert all(np.array_equal(a.args[1], b.args[1]) for a, b in zip(fresh[::2], fresh[1::2], strict=True))

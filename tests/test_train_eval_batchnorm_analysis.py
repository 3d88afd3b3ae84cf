"""The train-eval-batchnorm analysis on synthetic outputs: each mistake found, and nothing found wrongly."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from grader.exercise.evidence import Observation
from grader.pipeline.compare import close_enough
from tests.conftest import ROOT

RTOL, ATOL = 1e-5, 1e-6
EPS = 1e-5
# (batch, features, scale) of each input, as the exercise's cases vary them; None: six equal rows.
SHAPES = [(3, 2, 2.0), (2, 1, 3.0), None, (5, 3, 1.5), (16, 8, 0.01), (8, 8, 50.0), (2, 32, 0.5), (64, 1, 100.0)]
# The exercise's tolerance per leaf (exercise.toml): the output's atol, the variance's rtol.
LEAF_TOLERANCE = {"y": (RTOL, 1e-3), "mean": (RTOL, ATOL), "var": (1e-4, ATOL)}

spec = importlib.util.spec_from_file_location(
    "batchnorm_analysis_under_test", ROOT / "exercises/train-eval-batchnorm/analysis.py"
)
assert spec and spec.loader
analysis = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = analysis
spec.loader.exec_module(analysis)


@dataclass(frozen=True)
class Batch:
    """The Dense output of one input, and the statistics BatchNorm derives from it."""

    h: np.ndarray

    @property
    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        return self.h.mean(axis=0), self.h.var(axis=0)

    def running(self, steps: int, momentum: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.batch
        kept = momentum**steps
        return (1 - kept) * mean, kept + (1 - kept) * var

    @property
    def initial(self) -> tuple[np.ndarray, np.ndarray]:
        return self.running(0)

    def norm(self, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return (self.h - stats[0]) / np.sqrt(stats[1] + EPS)

    def by_rows(self) -> np.ndarray:
        return (self.h - self.h.mean(1, keepdims=True)) / np.sqrt(self.h.var(1, keepdims=True) + EPS)


Tree = tuple[np.ndarray, dict[str, np.ndarray]]


def out(y: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> Tree:
    return np.asarray(y, np.float32), {
        "mean": np.asarray(stats[0], np.float32),
        "var": np.asarray(stats[1], np.float32),
    }


def expected(b: Batch) -> tuple[Tree, Tree]:
    """(train, eval) as the reference gives them."""
    return out(b.norm(b.batch), b.running(2)), out(b.norm(b.running(1)), b.running(1))


def batches(seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    found = []
    for shape in SHAPES:
        if shape is None:  # equal rows: every column has variance 0
            h = np.tile(rng.standard_normal((1, 4)), (6, 1))
        else:
            n, f, scale = shape
            h = rng.standard_normal((n, f)) * scale + rng.standard_normal(f) * scale / 2
        found.append(Batch(h.astype(np.float32).astype(np.float64)))
    return found


def passed(actual: object, wanted: Tree) -> bool:
    if not (isinstance(actual, tuple) and len(actual) == 2 and isinstance(actual[1], dict)):
        return False
    if set(actual[1]) != {"mean", "var"}:
        return False
    leaves = {"y": (actual[0], wanted[0])} | {k: (actual[1][k], wanted[1][k]) for k in ("mean", "var")}
    for name, (a, e) in leaves.items():
        rtol, atol = LEAF_TOLERANCE[name]
        if a.shape != e.shape or not close_enough(np.asarray(a), e, rtol=rtol, atol=atol).all():
            return False
    return True


Submit = Callable[[Batch, np.random.Generator], tuple[Tree | None, Tree | None]]


def observe(submit: Submit, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(99)
    found = []
    for i, b in enumerate(batches(seed)):
        wanted = expected(b)
        got = submit(b, rng)
        for mode, e, a in zip(("train", "eval"), wanted, got, strict=True):
            found.append(
                Observation(
                    case_id=f"g{i}/{mode}",
                    group=f"g{i}",
                    labels={"train": mode},
                    args=(),
                    expected=e,
                    actual=a,
                    passed=passed(a, e),
                )
            )
    return found


def correct(b: Batch, r: np.random.Generator) -> tuple[Tree, Tree]:
    return expected(b)


def momentum(m: float) -> Submit:
    return lambda b, r: (out(b.norm(b.batch), b.running(2, m)), out(b.norm(b.running(1, m)), b.running(1, m)))


def by_rows(b: Batch, r: np.random.Generator) -> tuple[Tree, Tree]:
    """BatchNorm(axis=0): each row normalised over its features, one statistic per row."""
    row = Batch(b.h.T)
    return out(b.by_rows(), row.running(2)), out(row.norm(row.running(1)).T, row.running(1))


MISTAKES: dict[str, list[Submit]] = {
    "running-average-inverted": [
        lambda b, r: (out(b.norm(b.initial), b.initial), out(b.norm(b.batch), b.initial)),
        lambda b, r: (out(b.norm(b.initial), b.initial), None),  # evaluation raised
        lambda b, r: (out(b.norm(b.initial), b.initial), out(b.norm(b.batch), b.running(1))),  # mutable at eval
    ],
    "stats-not-carried": [
        lambda b, r: (out(b.norm(b.batch), b.running(1)), out(b.norm(b.initial), b.initial)),
    ],
    "stats-before-update": [
        lambda b, r: (out(b.norm(b.batch), b.running(1)), expected(b)[1]),
    ],
    "momentum-wrong": [momentum(0.99), momentum(0.1), momentum(0.5)],
    "batch-stats-at-eval": [
        lambda b, r: (expected(b)[0], out(b.norm(b.batch), b.running(1))),
        lambda b, r: (expected(b)[0], out(b.norm(b.batch), b.running(2))),  # the statistics apply returned
    ],
    "wrong-axis": [
        by_rows,
        lambda b, r: (out(b.by_rows(), (b.h.mean(1), b.h.var(1))), None),  # evaluation raised
    ],
}


@pytest.mark.parametrize(
    ("code", "submit"),
    [(code, submit) for code, submits in MISTAKES.items() for submit in submits],
    ids=[f"{code}-{i}" for code, submits in MISTAKES.items() for i in range(len(submits))],
)
def test_each_mistake_is_found(code: str, submit: Submit) -> None:
    observed = observe(submit)
    findings = analysis.analyze(observed, rtol=RTOL, atol=ATOL)
    assert [f.code for f in findings] == [code]
    wrong = {o.case_id for o in observed if not o.passed}
    assert findings[0].cases and set(findings[0].cases) == wrong
    assert findings[0].evidence


@pytest.mark.parametrize(("value", "shown", "weight"), [(0.99, "0.99", "0.01"), (0.1, "0.1", "0.9")])
def test_the_implied_momentum_is_reported(value: float, shown: str, weight: str) -> None:
    (finding,) = analysis.analyze(observe(momentum(value)), rtol=RTOL, atol=ATOL)
    assert finding.details == {"momentum": shown, "weight": weight}


def test_inverted_says_what_evaluation_showed() -> None:
    (raised,) = analysis.analyze(observe(MISTAKES["running-average-inverted"][1]), rtol=RTOL, atol=ATOL)
    (shown,) = analysis.analyze(observe(MISTAKES["running-average-inverted"][0]), rtol=RTOL, atol=ATOL)
    assert "evaluation output" not in raised.evidence and "evaluation output" in shown.evidence


def other_dense(b: Batch) -> Batch:
    return Batch(1.3 * b.h + 0.1)


@pytest.mark.parametrize(
    "submit",
    [
        correct,
        lambda b, r: tuple(out(t[0] * (1 + 1e-7), (t[1]["mean"], t[1]["var"])) for t in expected(b)),  # rounding
        lambda b, r: tuple(out(t[0] + r.normal(0, 0.1, t[0].shape), (t[1]["mean"], t[1]["var"])) for t in expected(b)),
        lambda b, r: tuple(out(2 * t[0], (t[1]["mean"], t[1]["var"])) for t in expected(b)),  # a factor
        lambda b, r: tuple(out(np.zeros_like(t[0]), (t[1]["mean"], t[1]["var"])) for t in expected(b)),  # zeros
        lambda b, r: expected(other_dense(b)),  # BatchNorm right, another Dense output
        lambda b, r: (expected(b)[0], out(b.norm(b.initial), b.initial)),  # running averages always, at eval only
        lambda b, r: (out(b.norm(b.initial), b.initial), out(b.norm(b.initial), b.initial)),  # always
        momentum(0.9 + 1e-5),  # 0.9, within rounding
        lambda b, r: (out(b.norm(b.batch) * 0.5, b.running(1)), out(b.norm(b.initial), b.initial)),  # half of it
    ],
    ids=[
        "correct",
        "within-rounding",
        "noise",
        "factor",
        "zeros",
        "other-dense",
        "initial-at-eval",
        "running-average-always",
        "momentum-0.9",
        "not-carried-then-scaled",
    ],
)
def test_nothing_is_claimed_without_evidence(submit: Submit) -> None:
    assert analysis.analyze(observe(submit), rtol=RTOL, atol=ATOL) == []


def test_mixed_evidence_names_nothing() -> None:
    """Half the pairs show one mistake, half another: no pair may be left out of a finding."""
    inverted, not_carried = MISTAKES["running-average-inverted"][0], MISTAKES["stats-not-carried"][0]
    flip = iter(range(100))
    observed = observe(lambda b, r: (inverted if next(flip) % 2 else not_carried)(b, r))
    assert analysis.analyze(observed, rtol=RTOL, atol=ATOL) == []


def test_pairs_without_both_outputs_are_left_out() -> None:
    observed = [o for o in observe(MISTAKES["stats-not-carried"][0]) if not o.case_id.endswith("/eval")]
    assert analysis.analyze(observed, rtol=RTOL, atol=ATOL) == []


def test_non_finite_outputs_are_no_evidence() -> None:
    """Without epsilon, the columns of variance 0 come out NaN: those pairs agree with no mistake."""

    def no_epsilon(b: Batch, r: np.random.Generator) -> tuple[Tree, Tree]:
        mean, var = b.batch
        with np.errstate(divide="ignore", invalid="ignore"):
            y = (b.h - mean) / np.sqrt(var)
        return out(y, b.running(2)), expected(b)[1]

    assert analysis.analyze(observe(no_epsilon), rtol=RTOL, atol=ATOL) == []


def test_other_structures_are_no_evidence() -> None:
    """An output without the expected leaves (a list of three, a dict without var) is left out, not a crash."""
    observed = observe(lambda b, r: ((np.zeros(3), {"mean": np.zeros(1)}), [np.zeros(2)] * 3))
    assert analysis.analyze(observed, rtol=RTOL, atol=ATOL) == []

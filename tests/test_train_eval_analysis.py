"""The train-eval-dropout analysis on synthetic outputs: each mistake found, and nothing found wrongly."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import pytest

from grader.exercise.evidence import Observation
from tests.conftest import ROOT

RTOL, ATOL = 1e-5, 1e-6
LENGTHS = [4, 1, 3, 4, 16, 16, 64, 64]

spec = importlib.util.spec_from_file_location("analysis_under_test", ROOT / "exercises/train-eval-dropout/analysis.py")
assert spec and spec.loader
analysis = importlib.util.module_from_spec(spec)
import sys  # noqa: E402

sys.modules[spec.name] = analysis
spec.loader.exec_module(analysis)


def reference(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(eval output, keep mask, train output) per input, as Dense then Dropout(0.5) would give them."""
    rng = np.random.default_rng(seed)
    out = []
    for n in LENGTHS:
        evaluation = rng.standard_normal(n).astype(np.float32)
        keep = rng.random(n) < 0.5
        out.append((evaluation, keep, np.where(keep, 2 * evaluation, 0).astype(np.float32)))
    return out


Submit = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def observe(submit: Submit) -> list[Observation]:
    rng = np.random.default_rng(99)
    found = []
    for i, (evaluation, keep, train) in enumerate(reference()):
        sub_train, sub_eval = submit(evaluation, keep, train, rng)
        for mode, expected, actual in (("train", train, sub_train), ("eval", evaluation, sub_eval)):
            found.append(
                Observation(
                    case_id=f"g{i}/{mode}",
                    group=f"g{i}",
                    labels={"train": mode},
                    args=(),
                    expected=expected,
                    actual=np.asarray(actual, np.float32),
                    passed=bool(np.allclose(actual, expected, rtol=RTOL, atol=ATOL)),
                )
            )
    return found


def other_mask(n: int, rng: np.random.Generator, keep: float = 0.5) -> np.ndarray:
    return rng.random(n) < keep


MISTAKES: dict[str, list[Submit]] = {
    "deterministic-inverted": [
        lambda e, k, t, r: (e, t),
        lambda e, k, t, r: (e, np.where(other_mask(e.size, r), 2 * e, 0)),  # inverted, and another key too
    ],
    "dropout-never-active": [lambda e, k, t, r: (e, e)],
    "dropout-active-at-eval": [
        lambda e, k, t, r: (t, t),
        lambda e, k, t, r: (t, np.where(other_mask(e.size, r), 2 * e, 0)),
    ],
    "dropout-rng-mismatch": [
        lambda e, k, t, r: (np.where(other_mask(e.size, r), 2 * e, 0), e),
        lambda e, k, t, r: (np.where(~k, 2 * e, 0), e),  # the complementary mask
    ],
    "dropout-rate-wrong": [
        lambda e, k, t, r: (np.where(other_mask(e.size, r, 0.7), e / 0.7, 0), e),
        lambda e, k, t, r: (np.where(other_mask(e.size, r, 0.9), e / 0.9, 0), e),
    ],
    "dropout-not-rescaled": [
        lambda e, k, t, r: (np.where(k, e, 0), e),
        lambda e, k, t, r: (np.where(other_mask(e.size, r), e, 0), e),
    ],
    "eval-mismatch": [
        lambda e, k, t, r: (np.where(k, 2 * (1.3 * e + 0.1), 0), 1.3 * e + 0.1),  # other parameters
        lambda e, k, t, r: (np.where(k, -2 * e, 0), -e),
        lambda e, k, t, r: (np.where(other_mask(e.size, r), 2 * (e + 1), 0), e + 1),  # params and mask both off
        lambda e, k, t, r: (t + 0.5, e + 0.5),
    ],
}


@pytest.mark.parametrize(
    ("code", "submit"),
    [(code, submit) for code, submits in MISTAKES.items() for submit in submits],
    ids=[f"{code}-{i}" for code, submits in MISTAKES.items() for i in range(len(submits))],
)
def test_each_mistake_is_found(code: str, submit: Submit) -> None:
    findings = analysis.analyze(observe(submit), rtol=RTOL, atol=ATOL)
    assert [f.code for f in findings] == [code]
    assert findings[0].cases and findings[0].evidence


def test_eval_mismatch_says_when_dropout_itself_is_right() -> None:
    (right,) = analysis.analyze(observe(MISTAKES["eval-mismatch"][0]), rtol=RTOL, atol=ATOL)
    (unclear,) = analysis.analyze(observe(MISTAKES["eval-mismatch"][3]), rtol=RTOL, atol=ATOL)
    assert "Dropout itself is right" in right.evidence and "Dropout itself is right" not in unclear.evidence


def test_the_implied_rate_is_reported() -> None:
    (finding,) = analysis.analyze(observe(MISTAKES["dropout-rate-wrong"][0]), rtol=RTOL, atol=ATOL)
    assert finding.details["rate"] == "0.3"


@pytest.mark.parametrize(
    "submit",
    [
        lambda e, k, t, r: (t, e),  # correct
        lambda e, k, t, r: (t * (1 + 1e-7), e),  # correct within tolerance
        lambda e, k, t, r: (t + r.normal(0, 0.1, t.shape), e),  # train wrong in no known way
        lambda e, k, t, r: (np.where(k, 2 * e, 0.3), e),  # dropped units not zero
        lambda e, k, t, r: (np.where(k, 2 * e * r.uniform(1, 3, e.shape), 0), e),  # no common scale
        lambda e, k, t, r: (3 * t, e),  # a factor in training: scale 6, yet half the units kept
        lambda e, k, t, r: (np.where(other_mask(e.size, r, 0.9), 2 * e, 0), e),  # scale 2, 90% kept
    ],
    ids=["correct", "within-tolerance", "noise", "dropped-not-zero", "no-common-scale", "factor", "fraction"],
)
def test_nothing_is_claimed_without_evidence(submit: Submit) -> None:
    assert analysis.analyze(observe(submit), rtol=RTOL, atol=ATOL) == []


def test_pairs_without_both_outputs_are_left_out() -> None:
    observed = [o for o in observe(MISTAKES["dropout-never-active"][0]) if not o.case_id.endswith("/eval")]
    assert analysis.analyze(observed, rtol=RTOL, atol=ATOL) == []


@pytest.mark.parametrize(
    "submit",
    [
        lambda e, k, t, r: (np.where(k, 2 * np.maximum(e, 0), 0), np.maximum(e, 0)),  # a ReLU before Dropout
        lambda e, k, t, r: (np.maximum(e, 0), e),  # a ReLU in training instead of Dropout
        lambda e, k, t, r: (np.where(k, 2 * np.log(e), 0), np.log(e)),  # NaN for negative units
    ],
    ids=["relu-before-dropout", "relu-instead-of-dropout", "nan"],
)
def test_sign_aligned_or_nan_zeros_are_not_taken_for_dropout(submit: Submit) -> None:
    with np.errstate(invalid="ignore"):
        findings = analysis.analyze(observe(submit), rtol=RTOL, atol=ATOL)
    assert {f.code for f in findings} <= {"eval-mismatch"}


@pytest.mark.parametrize(
    "submit",
    [
        lambda e, k, t, r: (np.zeros_like(t), np.zeros_like(e)),  # zeros of the right shape in both modes
        lambda e, k, t, r: (t, np.zeros_like(e)),  # right in training, zeros at eval
        lambda e, k, t, r: (e, np.zeros_like(e)),  # eval's output in training, zeros at eval
        lambda e, k, t, r: (np.zeros_like(t), t),  # zeros in training: a mask that keeps nothing
    ],
    ids=["zeros", "eval-zeros", "train-as-eval-eval-zeros", "train-zeros-eval-dropped"],
)
def test_outputs_of_zeros_are_no_dropout(submit: Submit) -> None:
    """0 everywhere keeps no unit: it shows neither a mask nor a scale, so no dropout finding rests on it."""
    findings = analysis.analyze(observe(submit), rtol=RTOL, atol=ATOL)
    assert [f.code for f in findings] == ["eval-mismatch"]


def test_zeros_at_eval_are_named_in_the_evidence() -> None:
    zeros = observe(lambda e, k, t, r: (np.zeros_like(t), np.zeros_like(e)))
    (finding,) = analysis.analyze(zeros, rtol=RTOL, atol=ATOL)
    assert "0 in every unit" in finding.evidence and "Dropout itself is right" not in finding.evidence

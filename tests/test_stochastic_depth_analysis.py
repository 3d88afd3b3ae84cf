"""The stochastic-depth analysis on synthetic outputs: each mistake found, and nothing found wrongly."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from grader.exercise.evidence import Observation
from tests.conftest import ROOT

RTOL, ATOL = 1e-5, 1e-6
# (batch, features, magnitude of x): a batch of one to 64, one feature to 32, small and large magnitudes.
SHAPES = [(4, 3, 1.0), (1, 1, 1.0), (2, 5, 1.0), (6, 4, 1.0), (64, 1, 1.0), (16, 8, 1.0), (16, 32, 2.0), (64, 32, 1.0)]
SHAPES += [(64, 16, 1e4), (2, 32, 0.01)]

spec = importlib.util.spec_from_file_location("sd_analysis_under_test", ROOT / "exercises/stochastic-depth/analysis.py")
assert spec and spec.loader
analysis = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = analysis
spec.loader.exec_module(analysis)


@dataclass(frozen=True)
class Block:
    """One case as the reference computes it: x, the branch f = relu(...), and the rows that keep it."""

    x: np.ndarray
    f: np.ndarray
    keep: np.ndarray  # (batch, 1)
    rng: np.random.Generator

    @property
    def train(self) -> np.ndarray:
        return (self.x + np.where(self.keep, self.f / np.float32(0.75), 0)).astype(np.float32)

    @property
    def eval(self) -> np.ndarray:
        return (self.x + self.f).astype(np.float32)

    def mask(self, shape: tuple[int, ...], keep: float = 0.75) -> np.ndarray:
        """Another mask, of any shape that broadcasts to the branch."""
        return self.rng.random(shape) < keep

    def depth(self, keep: np.ndarray, scale: float = 1 / 0.75) -> np.ndarray:
        """x plus the branch where ``keep`` holds, times ``scale``."""
        return (self.x + np.where(keep, self.f * np.float32(scale), 0)).astype(np.float32)

    @property
    def rows(self) -> tuple[int, int]:
        return (self.x.shape[0], 1)


def blocks(seed: int = 0, shapes: list[tuple[int, int, float]] = SHAPES) -> list[Block]:
    rng = np.random.default_rng(seed)
    found = []
    for i, (batch, features, magnitude) in enumerate(shapes):
        x = (rng.standard_normal((batch, features)) * magnitude).astype(np.float32)
        f = np.maximum(x @ rng.standard_normal((features, features)).astype(np.float32), 0)
        f[rng.random(batch) < 0.2] = 0  # rows whose branch is 0: dropping them does not show
        found.append(
            Block(x, f.astype(np.float32), rng.random((batch, 1)) < 0.75, np.random.default_rng([seed, i, 99]))
        )
    return found


Submit = Callable[[Block], tuple[np.ndarray, np.ndarray]]


def observe(submit: Submit, *, shapes: list[tuple[int, int, float]] = SHAPES) -> list[Observation]:
    found = []
    for i, block in enumerate(blocks(shapes=shapes)):
        sub_train, sub_eval = submit(block)
        for mode, expected, actual in (("train", block.train, sub_train), ("eval", block.eval, sub_eval)):
            actual = np.asarray(actual, np.float32)
            scale = 8 * np.finfo(np.float32).eps * np.abs(expected).max()
            found.append(
                Observation(
                    case_id=f"g{i}/{mode}",
                    group=f"g{i}",
                    labels={"train": mode},
                    args=(float(i), block.x, 1.0 if mode == "train" else 0.0),
                    expected=expected,
                    actual=actual,
                    passed=bool(np.allclose(actual, expected, rtol=RTOL, atol=ATOL + scale)),
                )
            )
    return found


def codes(submit: Submit, **kwargs: object) -> list[str]:
    return [f.code for f in analysis.analyze(observe(submit, **kwargs), rtol=RTOL, atol=ATOL)]


MISTAKES: dict[str, list[Submit]] = {
    "deterministic-inverted": [
        lambda b: (b.eval, b.train),
        lambda b: (b.eval, b.depth(b.mask(b.rows))),  # inverted, and another key too
    ],
    "dropout-never-active": [lambda b: (b.eval, b.eval)],
    "dropout-active-at-eval": [
        lambda b: (b.train, b.train),
        lambda b: (b.train, b.depth(b.mask(b.rows))),
    ],
    "mask-per-element": [
        lambda b: (b.depth(b.mask(b.x.shape)), b.eval),
        lambda b: (b.depth(b.mask(b.x.shape)) * np.float32(1 + 1e-7), b.eval),  # with a rounding of its own
    ],
    "mask-shared-across-batch": [
        lambda b: (b.depth(b.mask((1, b.x.shape[1]))), b.eval),  # broadcast_dims=(0,): one draw per feature
        lambda b: (b.depth(b.mask((1, 1))), b.eval),  # broadcast_dims=(0, 1): one draw for the whole batch
    ],
    "dropout-on-residual-sum": [
        lambda b: (np.where(b.keep, b.eval / np.float32(0.75), 0), b.eval),
        lambda b: (np.where(b.mask(b.rows), b.eval / np.float32(0.75), 0), b.eval),
    ],
    "residual-missing": [
        lambda b: (b.train - b.x, b.f),
        lambda b: (np.where(b.keep, b.f / np.float32(0.75), 0), b.f),
    ],
    "dropout-rate-wrong": [
        lambda b: (b.depth(b.mask(b.rows, 0.25), 4.0), b.eval),  # the keep probability given as the rate
        lambda b: (b.depth(b.mask(b.rows, 0.5), 2.0), b.eval),
    ],
    "branch-not-rescaled": [
        lambda b: (b.depth(b.keep, 1.0), b.eval),
        lambda b: (b.depth(b.mask(b.rows), 1.0), b.eval),
    ],
    "dropout-rng-mismatch": [
        lambda b: (b.depth(b.mask(b.rows)), b.eval),
        lambda b: (b.depth(b.mask(b.rows, 0.7)), b.eval),  # a mask that keeps a little less, by chance
    ],
    "eval-mismatch": [
        # The branch differs (another Dense), the stochastic depth around it is right.
        lambda b: (b.x + np.where(b.keep, (b.f + 0.5) / np.float32(0.75), 0), b.x + b.f + 0.5),
        lambda b: (np.zeros_like(b.x), np.zeros_like(b.x)),
        lambda b: (b.train + 0.5, b.eval + 0.5),  # an offset in both modes
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


@pytest.mark.parametrize(
    ("submit", "expected"),
    [
        # Dropout on x + branch without broadcast_dims: on the sum, and per element.
        (
            lambda b: (np.where(b.mask(b.x.shape), b.eval / np.float32(0.75), 0), b.eval),
            {"dropout-on-residual-sum", "mask-per-element"},
        ),
        # One draw with no shape, kept branches not divided by 0.75.
        (lambda b: (b.depth(b.mask((1, 1)), 1.0), b.eval), {"mask-shared-across-batch", "branch-not-rescaled"}),
        # The branch alone, and the flag never reaching Dropout.
        (lambda b: (b.f, b.f), {"residual-missing", "dropout-never-active"}),
    ],
    ids=["on-sum-per-element", "shared-not-rescaled", "no-residual-never-active"],
)
def test_two_mistakes_at_once_are_both_found(submit: Submit, expected: set[str]) -> None:
    assert set(codes(submit)) == expected


def test_the_implied_rate_is_reported() -> None:
    (finding,) = analysis.analyze(observe(MISTAKES["dropout-rate-wrong"][1]), rtol=RTOL, atol=ATOL)
    assert finding.details == {"rate": "0.5", "scale": "2"}
    (keep_as_rate,) = analysis.analyze(observe(MISTAKES["dropout-rate-wrong"][0]), rtol=RTOL, atol=ATOL)
    assert keep_as_rate.details["rate"] == "0.75"


def test_the_sharing_is_named_in_the_evidence() -> None:
    (per_feature,) = analysis.analyze(observe(MISTAKES["mask-shared-across-batch"][0]), rtol=RTOL, atol=ATOL)
    (whole_batch,) = analysis.analyze(observe(MISTAKES["mask-shared-across-batch"][1]), rtol=RTOL, atol=ATOL)
    assert (
        "each feature" in per_feature.evidence and "every row is dropped or every row is kept" in whole_batch.evidence
    )


def test_eval_mismatch_says_when_stochastic_depth_itself_is_right() -> None:
    (right,) = analysis.analyze(observe(MISTAKES["eval-mismatch"][0]), rtol=RTOL, atol=ATOL)
    (zeros,) = analysis.analyze(observe(MISTAKES["eval-mismatch"][1]), rtol=RTOL, atol=ATOL)
    (offset,) = analysis.analyze(observe(MISTAKES["eval-mismatch"][2]), rtol=RTOL, atol=ATOL)
    assert "itself is right" in right.evidence and any(c.endswith("/train") for c in right.cases)
    assert "0 in every element" in zeros.evidence and "itself is right" not in zeros.evidence
    assert "itself is right" not in offset.evidence


@pytest.mark.parametrize(
    "submit",
    [
        lambda b: (b.train, b.eval),  # correct
        lambda b: (b.train * np.float32(1 + 2e-7), b.eval),  # correct within rounding
        lambda b: (b.train + b.rng.normal(0, 0.1, b.x.shape), b.eval),  # train wrong in no known way
        lambda b: (np.where(b.keep, b.train, b.x + 0.3), b.eval),  # dropped rows not x
        lambda b: (b.depth(b.keep, 1 / 0.75) * b.rng.uniform(1, 2, b.rows), b.eval),  # no common scale
        lambda b: (b.depth(b.mask(b.rows), 4.0), b.eval),  # scale 4 with 75% kept: a factor, not a rate
        lambda b: (b.depth(b.mask(b.rows, 0.5)), b.eval),  # scale 1/0.75 with half the rows kept
        lambda b: (b.x, b.eval),  # every branch dropped: no scale, no share to judge
        lambda b: (b.depth(b.mask(b.rows), 1.0) + 0.01, b.eval),  # not rescaled, and an offset besides
    ],
    ids=[
        "correct",
        "within-rounding",
        "noise",
        "dropped-not-x",
        "no-common-scale",
        "factor",
        "fraction",
        "all-dropped",
        "offset",
    ],
)
def test_nothing_is_claimed_without_evidence(submit: Submit) -> None:
    assert codes(submit) == []


def test_too_few_rows_do_not_decide_how_draws_are_shared() -> None:
    """With a batch of at most two, one draw for the whole batch is as likely as one per row."""
    few = [(2, 1, 1.0), (1, 3, 1.0), (2, 1, 1.0)]
    assert "mask-shared-across-batch" not in codes(MISTAKES["mask-shared-across-batch"][1], shapes=few)


def test_rows_whose_branch_is_zero_count_for_nothing() -> None:
    """A row whose branch is 0 is the same dropped or kept: a submission may keep or drop it as it likes."""
    flip_hidden = lambda b: (b.depth(b.keep ^ (np.abs(b.f).max(axis=1, keepdims=True) == 0)), b.eval)  # noqa: E731
    assert codes(flip_hidden) == []


def test_pairs_without_both_outputs_are_left_out() -> None:
    observed = [o for o in observe(MISTAKES["dropout-never-active"][0]) if not o.case_id.endswith("/eval")]
    assert analysis.analyze(observed, rtol=RTOL, atol=ATOL) == []


def test_large_magnitudes_keep_their_findings() -> None:
    large = [(64, 16, 1e4), (32, 8, 1e4), (64, 32, -1e3)]
    assert codes(MISTAKES["mask-per-element"][0], shapes=large) == ["mask-per-element"]
    assert codes(MISTAKES["branch-not-rescaled"][1], shapes=large) == ["branch-not-rescaled"]
    assert codes(lambda b: (b.train, b.eval), shapes=large) == []

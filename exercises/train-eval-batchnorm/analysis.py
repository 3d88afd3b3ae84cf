"""Properties of train/eval outputs that need no exact computation order, for the exercise train-eval-batchnorm.

Every case runs in both modes. The reference's evaluation output is the Dense output ``h`` normalised by the
running averages after one training step, and its statistics are those averages: with the batch's mean ``mu``
and (biased, Flax's) variance ``s2`` over the rows, ``m1 = 0.1 * mu`` and ``v1 = 0.9 * 1 + 0.1 * s2`` (from the
initial mean 0 and var 1). So ``h``, ``mu`` and ``s2`` follow from the expected evaluation output alone.
Its training output is ``h`` normalised by the batch's own statistics (each column mean 0, variance
``s2 / (s2 + eps)`` ~ 1), and its statistics have moved once more: ``0.9 * m1 + 0.1 * mu`` and
``0.9 * v1 + 0.1 * s2``.

From the submission's pair of outputs for the same input, this module tells which statistics normalised each
output (the batch's, the initial averages, the averages after one step, with which momentum) and which came
back, and recognises each mistake of the catalog however it was written. A finding is made only when every
pair the submission returned agrees with it and some pair shows it; anything else is left to the generic
``values-mismatch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grader.exercise.evidence import Finding, Observation, in_both_modes

MODE = "train"  # the expanded parameter, and its labels
TRAIN, EVAL = "train", "eval"
EPS = 1e-5  # BatchNorm's epsilon
MOMENTUM = 0.9  # the weight of the old running average
# Agreement with a predicted output is judged more loosely than grading: within AGREE_RTOL of the leaf's
# largest |value|, plus a floor. The predictions come from the expected outputs in float64, and every mistake
# moves its leaves by 1e-2 relative or more where it shows, so a loose test still tells them apart. The
# output's floor is twice its grading atol (exercise.toml: a column of variance 0 magnifies rounding ~316
# times, up to 6e-4 between correct submissions).
AGREE_RTOL = 1e-3
OUTPUT_FLOOR = 2e-3
MOMENTUM_ATOL = 1e-3  # a momentum this close to 0.9 is 0.9


@dataclass(frozen=True)
class _Out:
    """One output as float64 arrays: the normalised output and the statistics (None where not a finite array)."""

    y: np.ndarray | None
    mean: np.ndarray | None
    var: np.ndarray | None


@dataclass(frozen=True)
class _Pair:
    """One input in both modes: the Dense output the reference normalised, and what the submission returned."""

    train: Observation
    eval: Observation
    h: np.ndarray  # the reference's Dense output, (batch, features)
    mu: np.ndarray  # its batch mean per feature
    s2: np.ndarray  # its batch variance per feature (biased, as Flax computes it)
    own_train: _Out | None  # None: nothing comparable came back (an exception, another structure)
    own_eval: _Out | None

    @property
    def wrong(self) -> bool:
        return not (self.train.passed and self.eval.passed)

    @property
    def wrong_ids(self) -> list[str]:
        return [o.case_id for o in (self.train, self.eval) if not o.passed]

    def running(self, momentum: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The running averages after ``steps`` training steps on this batch, from mean 0 and var 1."""
        kept = momentum**steps
        return (1 - kept) * self.mu, kept + (1 - kept) * self.s2

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mu, self.s2

    def normalised(self, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The Dense output normalised by ``stats`` (BatchNorm's scale 1 and bias 0, as initialised)."""
        mean, var = stats
        return (self.h - mean) / np.sqrt(var + EPS)

    def by_rows(self) -> np.ndarray:
        """The Dense output normalised over the features of each row, as BatchNorm(axis=0) does in training."""
        mean = self.h.mean(axis=1, keepdims=True)
        var = self.h.var(axis=1, keepdims=True)
        return (self.h - mean) / np.sqrt(var + EPS)


def _array(value: object) -> np.ndarray | None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        return None
    value = value.astype(np.float64)
    return value if np.all(np.isfinite(value)) else None


def _out(tree: object) -> _Out | None:
    """The leaves of an output (the output, {"mean", "var"}), or None when it is not that structure."""
    if not isinstance(tree, Sequence) or isinstance(tree, str) or len(tree) != 2 or not isinstance(tree[1], Mapping):
        return None
    return _Out(_array(tree[0]), _array(tree[1].get("mean")), _array(tree[1].get("var")))


def _pairs(observations: list[Observation]) -> list[_Pair]:
    pairs = []
    for _group, train, evaluation in in_both_modes(observations, parameter=MODE, modes=(TRAIN, EVAL)):
        expected = _out(evaluation.expected)
        if expected is None:
            continue
        if expected.y is None or expected.mean is None or expected.var is None or expected.y.ndim != 2:
            continue
        # The expected evaluation output is (h - m1) / sqrt(v1 + eps), computed with the very m1 and v1 it
        # returns: h comes back to float32 precision. Its mean and variance are taken from h, not from m1 and
        # v1 (v1 = 0.9 + 0.1 * s2 in float32 keeps few digits of a small s2).
        h = expected.y * np.sqrt(expected.var + EPS) + expected.mean
        own_train, own_eval = _out(train.actual), _out(evaluation.actual)
        pairs.append(_Pair(train, evaluation, h, h.mean(axis=0), h.var(axis=0), own_train, own_eval))
    return pairs


def _near(actual: np.ndarray | None, predicted: np.ndarray, floor: float) -> bool:
    """Whether ``actual`` is ``predicted`` within ``floor`` plus AGREE_RTOL of the prediction's largest |value|."""
    if actual is None or actual.shape != predicted.shape:
        return False
    tol = floor + AGREE_RTOL * float(np.max(np.abs(predicted), initial=0.0))
    return bool(np.all(np.abs(actual - predicted) <= tol))


def _output_is(out: _Out | None, predicted: np.ndarray) -> bool:
    return out is not None and _near(out.y, predicted, OUTPUT_FLOOR)


def _stats_are(out: _Out | None, stats: tuple[np.ndarray, np.ndarray], atol: float) -> bool:
    return out is not None and _near(out.mean, stats[0], atol) and _near(out.var, stats[1], atol)


def _ids(pairs: list[_Pair]) -> list[str]:
    return [i for p in pairs for i in p.wrong_ids]


Check = Callable[[list[_Pair], float], list[Finding]]


def analyze(observations: list[Observation], *, rtol: float, atol: float) -> list[Finding]:
    """Findings that every pair the submission returned agrees with; none when the evidence is mixed."""
    pairs = _pairs(observations)
    if not any(p.wrong for p in pairs):
        return []
    checks: tuple[Check, ...] = (
        _inverted,
        _not_carried,
        _before_update,
        _momentum,
        _batch_stats_at_eval,
        _wrong_axis,
    )
    for check in checks:
        found = check(pairs, atol)
        if found:
            return found
    return []


def _all_agree(pairs: list[_Pair], agrees: Callable[[_Pair], bool]) -> list[_Pair]:
    """The wrong pairs, when every pair agrees with the mistake and some pair is wrong; else []."""
    if not all(agrees(p) for p in pairs):
        return []
    return [p for p in pairs if p.wrong]


def _inverted(pairs: list[_Pair], atol: float) -> list[Finding]:
    """Training normalises with the initial averages and leaves them unmoved (BatchNorm read them); evaluation
    normalises with the batch's statistics, or raised (BatchNorm tried to write the averages)."""

    def agrees(p: _Pair) -> bool:
        initial = p.running(MOMENTUM, 0)
        in_training = _output_is(p.own_train, p.normalised(initial)) and _stats_are(p.own_train, initial, atol)
        return in_training and (p.own_eval is None or _output_is(p.own_eval, p.normalised(p.batch())))

    if any(p.wrong and p.own_train is None for p in pairs):
        return []  # the training output is the evidence: every wrong pair must have one
    wrong = _all_agree([p for p in pairs if p.own_train is not None], agrees)
    if not wrong:
        return []
    shown = sum(p.own_eval is not None for p in wrong)
    evidence = (
        f"in {len(wrong)} train/eval pairs, the training output is the Dense output normalised with the initial "
        "averages (mean 0, var 1), which come back unmoved"
    )
    if shown:
        evidence += f"; in {shown} of them the evaluation output has each column normalised over the batch"
    return [Finding("running-average-inverted", _ids(wrong), evidence)]


def _not_carried(pairs: list[_Pair], atol: float) -> list[Finding]:
    """The step's averages are dropped: evaluation uses the initial ones, training moves them once."""

    def agrees(p: _Pair) -> bool:
        initial = p.running(MOMENTUM, 0)
        return (
            _output_is(p.own_train, p.normalised(p.batch()))
            and _stats_are(p.own_train, p.running(MOMENTUM, 1), atol)
            and _output_is(p.own_eval, p.normalised(initial))
            and _stats_are(p.own_eval, initial, atol)
        )

    wrong = _all_agree(pairs, agrees)
    if not wrong:
        return []
    evidence = (
        f"in {len(wrong)} train/eval pairs, the evaluation output is normalised with the initial averages "
        "(mean 0, var 1) and returns them, and the training statistics have moved once from them instead of twice"
    )
    return [Finding("stats-not-carried", _ids(wrong), evidence)]


def _before_update(pairs: list[_Pair], atol: float) -> list[Finding]:
    """Everything right but the training statistics, which are the carried ones: those before this update."""

    def agrees(p: _Pair) -> bool:
        carried = p.running(MOMENTUM, 1)
        return (
            _output_is(p.own_train, p.normalised(p.batch()))
            and _stats_are(p.own_train, carried, atol)
            and _output_is(p.own_eval, p.normalised(carried))
            and _stats_are(p.own_eval, carried, atol)
        )

    wrong = _all_agree(pairs, agrees)
    if not wrong:
        return []
    evidence = (
        f"in {len(wrong)} train/eval pairs, the training output is right and its statistics equal the evaluation "
        "statistics: the averages the call started from, one update behind"
    )
    return [Finding("stats-before-update", _ids(wrong), evidence)]


def _implied_momentum(p: _Pair) -> float | None:
    """The momentum that the returned evaluation statistics imply (they moved once from mean 0 and var 1:
    ``(1 - m) * mu`` and ``1 + (1 - m) * (s2 - 1)``), by least squares over both, each part scaled to its size."""
    if p.own_eval is None or p.own_eval.mean is None or p.own_eval.var is None:
        return None
    if p.own_eval.mean.shape != p.mu.shape or p.own_eval.var.shape != p.s2.shape:
        return None
    parts = [(p.mu, p.own_eval.mean), (p.s2 - 1, p.own_eval.var - 1)]
    num = den = 0.0
    for moved, got in parts:
        size = float(np.max(np.abs(moved), initial=0.0))
        if size > 0:
            num += float(np.sum(moved * got)) / size**2
            den += float(np.sum(moved * moved)) / size**2
    return None if den == 0 else 1.0 - num / den


def _momentum(pairs: list[_Pair], atol: float) -> list[Finding]:
    """The averages move as ``m * old + (1 - m) * batch`` for one m other than 0.9, in both modes."""
    implied = [_implied_momentum(p) for p in pairs if p.wrong]
    if not implied or any(m is None for m in implied):
        return []
    momentum = float(np.median([m for m in implied if m is not None]))
    if abs(momentum - MOMENTUM) < MOMENTUM_ATOL:
        return []

    def agrees(p: _Pair) -> bool:
        once = p.running(momentum, 1)
        # In training the averages move from the carried ones: m * once + (1 - m) * batch = running(m, 2).
        return (
            _output_is(p.own_train, p.normalised(p.batch()))
            and _stats_are(p.own_train, p.running(momentum, 2), atol)
            and _output_is(p.own_eval, p.normalised(once))
            and _stats_are(p.own_eval, once, atol)
        )

    wrong = _all_agree(pairs, agrees)
    if not wrong:
        return []
    shown, weight = f"{momentum:.3g}", f"{1 - momentum:.3g}"
    evidence = (
        f"in {len(wrong)} train/eval pairs, the returned averages are {shown} times the old ones plus {weight} "
        "times the batch's statistics, and each output is normalised with them"
    )
    return [Finding("momentum-wrong", _ids(wrong), evidence, {"momentum": shown, "weight": weight})]


def _batch_stats_at_eval(pairs: list[_Pair], atol: float) -> list[Finding]:
    """Evaluation normalises with the batch's own statistics, as training does."""

    def agrees(p: _Pair) -> bool:
        return _output_is(p.own_train, p.normalised(p.batch())) and _output_is(p.own_eval, p.normalised(p.batch()))

    wrong = _all_agree(pairs, agrees)
    if not wrong or not any(not p.eval.passed for p in wrong):
        return []
    evidence = (
        f"in {len(wrong)} train/eval pairs, each column of the evaluation output has mean 0 and variance ~1 over "
        "the batch, as in training: it is normalised with the batch's statistics, not the running averages"
    )
    return [Finding("batch-stats-at-eval", _ids(wrong), evidence)]


def _wrong_axis(pairs: list[_Pair], atol: float) -> list[Finding]:
    """In training each row is normalised over the features, not each feature over the batch."""
    if any(p.wrong and p.own_train is None for p in pairs):
        return []  # the training output is the evidence: every wrong pair must have one

    def agrees(p: _Pair) -> bool:
        return _output_is(p.own_train, p.by_rows())

    wrong = _all_agree([p for p in pairs if p.own_train is not None], agrees)
    # With one feature a row normalised over its features is 0: only a wider batch shows the axis.
    if not wrong or not any(p.h.shape[1] > 1 for p in wrong):
        return []
    evidence = (
        f"in {len(wrong)} train/eval pairs, each row of the training output has mean 0 and variance ~1 over the "
        "features, where each column should have them over the batch"
    )
    return [Finding("wrong-axis", _ids(wrong), evidence)]

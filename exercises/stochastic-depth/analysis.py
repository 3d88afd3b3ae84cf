"""Properties of train/eval outputs that need no exact RNG, for the exercise stochastic-depth.

Every case runs in both modes. For an input ``x`` of shape (batch, features), the reference's eval output
is ``x + f`` with ``f = relu(Dense(x))``, and in its train output every row is either ``x`` (the branch
skipped) or ``x + f / 0.75`` (kept and rescaled), one draw per row. From the submission's own pair of
outputs for the same input this module recognises mistakes however they were written:

- how a row is dropped: to ``x`` (the branch), or to 0 (Dropout on the sum ``x + f``);
- which elements share one draw: a row (right), each element, each column or the whole batch (the mask
  shared across the batch), chosen by likelihood, pooled over every case;
- the scale of kept branches and the share of dropped ones: together they give the rate;
- the modes swapped, Dropout never or always active, the residual forgotten, another mask.

A finding is made only when every informative pair agrees with it; anything else is left to the
generic ``values-mismatch``. Rows whose branch is 0 (a ReLU of negatives) look the same dropped or
kept: they count for nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grader.exercise.evidence import Finding, Observation, in_both_modes

MODE = "train"  # the expanded parameter, and its labels
TRAIN, EVAL = "train", "eval"
KEEP = 0.75  # 1 - rate: the probability that a row keeps its branch
SCALE = 1 / KEEP  # what a kept branch is multiplied by
EPS32 = float(np.finfo(np.float32).eps)
SCALE_RTOL = 1e-4  # how closely every kept element must follow one common scale
VISIBLE = 20  # a branch element shows whether it was dropped when it is this many tolerances from 0
DROPPED = 3  # an element within this many tolerances of its base was dropped
LOG_EVIDENCE = math.log(1000)  # how much likelier one way of sharing draws must be than every other
SHARED = ("column", "batch")  # the mask shared across the batch: per feature, or one draw for all


@dataclass(frozen=True)
class _Pair:
    group: str
    train: Observation
    eval: Observation

    @property
    def ids(self) -> list[str]:
        return [self.train.case_id, self.eval.case_id]

    @property
    def x(self) -> np.ndarray:
        return np.asarray(self.train.args[1], dtype=np.float64)

    @property
    def outputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The submission's train and eval outputs, then the expected ones, as float64."""
        arrays = (self.train.actual, self.eval.actual, self.train.expected, self.eval.expected)
        return tuple(np.asarray(a, dtype=np.float64) for a in arrays)  # type: ignore[return-value]

    def tol(self, rtol: float, atol: float) -> float:
        """What rounding allows on one element of this case: the tolerance at the case's largest magnitude,
        with a float32 rounding term (a row is rebuilt from differences of outputs and inputs)."""
        finite = [np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in (self.x, *self.outputs)]
        magnitude = float(max(finite))
        return 4 * (atol + rtol * magnitude) + 16 * EPS32 * magnitude


@dataclass(frozen=True)
class _Fit:
    """An output seen as ``base + mask * scale * branch``: per element, was the branch visible, was it kept."""

    scale: float | None  # None when no visible element was kept
    visible: np.ndarray  # where dropping shows: the branch is not ~0
    kept: np.ndarray  # visible elements that were kept

    @property
    def dropped(self) -> np.ndarray:
        return self.visible & ~self.kept


def _pairs(observations: list[Observation]) -> list[_Pair]:
    pairs = []
    for group, train, evaluation in in_both_modes(observations, parameter=MODE, modes=(TRAIN, EVAL)):
        if not train.args:
            continue
        x = np.asarray(train.args[1])
        arrays = (train.actual, evaluation.actual, train.expected, evaluation.expected)
        if x.ndim == 2 and all(isinstance(a, np.ndarray) and a.shape == x.shape for a in arrays):
            pairs.append(_Pair(group, train, evaluation))
    return pairs


def _fit(out: np.ndarray, base: np.ndarray | float, branch: np.ndarray, tol: float) -> _Fit | None:
    """Whether every element of ``out`` is its base (dropped) or base + s * branch (kept), with one scale s
    for the whole output; None if not."""
    if not np.all(np.isfinite(out)) or not np.all(np.isfinite(branch)):
        return None
    diff = out - base
    visible = np.abs(branch) > VISIBLE * tol
    # Where the branch is ~0, dropped and kept look alike: the output must stay near its base either way.
    if np.any(np.abs(diff[~visible]) > 5 * np.abs(branch[~visible]) + DROPPED * tol):
        return None
    kept = visible & (np.abs(diff) > DROPPED * tol)
    if not kept.any():
        return _Fit(None, visible, kept)
    strong = kept & (np.abs(branch) > 100 * tol)
    chosen = strong if strong.any() else kept
    scale = float(np.median(diff[chosen] / branch[chosen]))
    residual = np.abs(diff[kept] - scale * branch[kept])
    if scale <= 0 or np.any(residual > DROPPED * tol + SCALE_RTOL * np.abs(scale * branch[kept])):
        return None
    return _Fit(scale, visible, kept)


def _fits(outs: list[np.ndarray], bases: list[np.ndarray | float], branches: list[np.ndarray], tols: list[float]):
    fits = [_fit(o, b, g, t) for o, b, g, t in zip(outs, bases, branches, tols, strict=True)]
    return None if any(f is None for f in fits) else fits


def _common_scale(fits: list[_Fit]) -> float | None:
    scales = [f.scale for f in fits if f.scale is not None]
    if not scales or not np.allclose(scales, scales[0], rtol=SCALE_RTOL * 10, atol=0):
        return None
    return float(np.median(scales))


def _is(scale: float | None, value: float) -> bool:
    return scale is not None and bool(np.isclose(scale, value, rtol=1e-3))


# How draws are shared: the axes one draw covers in a (batch, features) mask.
_UNIT_AXES = {"element": (), "row": (1,), "column": (0,), "batch": (0, 1)}


def _units(fit: _Fit, axes: tuple[int, ...]) -> tuple[int, int] | None:
    """(kept, total) units when every draw covers ``axes``; None if some unit is partly kept."""
    visible = fit.visible.sum(axis=axes) if axes else fit.visible.astype(int)
    kept = fit.kept.sum(axis=axes) if axes else fit.kept.astype(int)
    shown = visible > 0
    if np.any((kept[shown] > 0) & (kept[shown] < visible[shown])):
        return None
    return int((kept[shown] > 0).sum()), int(shown.sum())


def _log_likelihood(kept: int, total: int) -> float:
    return sum(n * math.log(n / total) for n in (kept, total - kept) if n)


@dataclass(frozen=True)
class _Sharing:
    """How the submission's draws are shared, and the units kept under that sharing."""

    name: str | None  # "element", "row", "column", "batch"; None when the evidence does not decide
    kept: int
    total: int

    def describe(self) -> str:
        share = 100 * self.kept / self.total if self.total else 0
        return f"{self.kept} of {self.total} {self.name or 'row'} draws kept ({share:.0f}%)"


def _sharing(fits: list[_Fit]) -> _Sharing:
    """The way of sharing draws that explains the kept elements, pooled over every case, when it is far
    likelier than every other (each with its own keep probability); row units when undecided."""
    counts: dict[str, tuple[int, int]] = {}
    for name, axes in _UNIT_AXES.items():
        units = [_units(fit, axes) for fit in fits]
        if all(u is not None for u in units):
            counts[name] = (sum(u[0] for u in units), sum(u[1] for u in units))  # type: ignore[index]
    ranked = sorted(counts, key=lambda name: _log_likelihood(*counts[name]), reverse=True)
    best = ranked[0]  # "element" always fits
    margin = math.inf if len(ranked) == 1 else _log_likelihood(*counts[best]) - _log_likelihood(*counts[ranked[1]])
    if margin >= LOG_EVIDENCE and counts[best][1] > 0:
        return _Sharing(best, *counts[best])
    fallback = "row" if "row" in counts else best
    return _Sharing(None, *counts[fallback])


def _fraction_agrees(kept: int, total: int, keep: float) -> bool:
    """Whether the share of kept draws fits a keep probability, within what chance allows."""
    if not 0 < keep <= 1 or total == 0:
        return False
    return abs(kept / total - keep) <= 4 * math.sqrt(keep * (1 - keep) / total) + 0.05


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tol))


def _informative(pair: _Pair, rtol: float, atol: float) -> bool:
    _, _, train, evaluation = pair.outputs
    return not _close(train, evaluation, pair.tol(rtol, atol))


def analyze(observations: list[Observation], *, rtol: float, atol: float) -> list[Finding]:
    """Findings supported by every informative train/eval pair; none when the evidence is mixed."""
    pairs = _pairs(observations)
    informative = [p for p in pairs if _informative(p, rtol, atol)]
    wrong = [p for p in informative if not (p.train.passed and p.eval.passed)]
    if not wrong:
        return []
    if all(p.eval.passed for p in pairs):
        return _train_findings(pairs, informative, rtol, atol)
    for check in (_inverted, _active_at_eval, _residual_missing):
        found = check(pairs, informative, rtol, atol)
        if found:
            return found
    return _eval_mismatch(pairs, rtol, atol)


def _train_findings(
    pairs: list[_Pair], informative: list[_Pair], rtol: float, atol: float, *, residual: bool = True
) -> list[Finding]:
    """The eval outputs are right (or wrong only by the missing residual, ``residual=False``): each train
    output, set against the submission's own eval output, says which part of stochastic depth differs."""
    wrong_train = [p.train.case_id for p in pairs if not p.train.passed]
    if not wrong_train:
        return []
    if informative and all(_close(p.outputs[0], p.outputs[1], p.tol(rtol, atol)) for p in informative):
        evidence = (
            f"in {len(informative)} train/eval pairs whose expected outputs differ, the train output equals "
            "the eval output"
        )
        return [Finding("dropout-never-active", wrong_train, evidence)]
    tols = [p.tol(rtol, atol) for p in pairs]
    trains, evals = [p.outputs[0] for p in pairs], [p.outputs[1] for p in pairs]
    on_sum = False
    fits = None
    if residual:  # the expected way: a dropped row is x, a kept one x + s * (eval - x)
        fits = _fits(trains, [p.x for p in pairs], [e - p.x for e, p in zip(evals, pairs, strict=True)], tols)
    if fits is None:  # a dropped row is 0 and a kept one s * eval: Dropout on x + f (or no residual at all)
        fits = _fits(trains, [0.0] * len(pairs), evals, tols)
        on_sum = residual
    if fits is None or not any(f.dropped.any() for f in fits):
        return []  # not a dropout of the eval output, or nothing ever dropped: no claim on how
    scale = _common_scale(fits)
    if scale is None:
        return []
    sharing = _sharing(fits)
    found = []
    if on_sum:
        evidence = (
            f"in {len(pairs)} train/eval pairs, every train row is 0 or {scale:.4g}× the eval row: "
            "the dropped rows lose x as well as the branch"
        )
        found.append(Finding("dropout-on-residual-sum", wrong_train, evidence))
    found += _sharing_findings(sharing, wrong_train)
    found += _scale_findings(scale, sharing, wrong_train)
    right_draws = sharing.name in (None, "row") and _fraction_agrees(sharing.kept, sharing.total, KEEP)
    if not found and _is(scale, SCALE) and right_draws:
        evidence = (
            f"in {len(pairs)} train/eval pairs every train row is x or x + (eval - x) / 0.75 "
            f"({sharing.describe()}), as stochastic depth makes it, but other rows are dropped than "
            "with the expected dropout key and module path"
        )
        found.append(Finding("dropout-rng-mismatch", wrong_train, evidence))
    return found


def _sharing_findings(sharing: _Sharing, ids: list[str]) -> list[Finding]:
    if sharing.name == "element":
        evidence = (
            f"rows are partly dropped: {sharing.describe()}, and single elements of one row are kept while "
            "others are dropped"
        )
        return [Finding("mask-per-element", ids, evidence)]
    if sharing.name in SHARED:
        if sharing.name == "column":
            how = "each feature is dropped for every row at once"
        else:
            how = "in each case every row is dropped or every row is kept"
        evidence = f"{how} ({sharing.describe()}): far likelier than one draw per row"
        return [Finding("mask-shared-across-batch", ids, evidence)]
    return []


def _scale_findings(scale: float, sharing: _Sharing, ids: list[str]) -> list[Finding]:
    if _is(scale, SCALE):
        return []
    if _is(scale, 1.0):
        if not _fraction_agrees(sharing.kept, sharing.total, KEEP):
            return []
        evidence = f"kept branches are added as they are, not divided by 0.75 ({sharing.describe()})"
        return [Finding("branch-not-rescaled", ids, evidence)]
    keep = 1 / scale
    if not _fraction_agrees(sharing.kept, sharing.total, keep):
        return []  # a scale that the share of kept draws does not bear out: a factor from something else
    rate = 1 - keep
    evidence = (
        f"kept branches are scaled by {scale:.4g} = 1/(1 - r) and {sharing.describe()}: "
        f"a rate of r = {rate:.3g}, not 0.25"
    )
    return [Finding("dropout-rate-wrong", ids, evidence, {"rate": f"{rate:.3g}", "scale": f"{scale:.4g}"})]


def _inverted(pairs: list[_Pair], informative: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """The train output is the expected eval output, and the eval output is stochastic depth of it."""
    if not informative:
        return []
    for p in informative:
        train, _, _, expected_eval = p.outputs
        if not _close(train, expected_eval, p.tol(rtol, atol)):
            return []
    tols = [p.tol(rtol, atol) for p in informative]
    evals = [p.outputs[1] for p in informative]
    branches = [p.outputs[0] - p.x for p in informative]
    fits = _fits(evals, [p.x for p in informative], branches, tols)
    if fits is None or not any(f.dropped.any() for f in fits) or not _is(_common_scale(fits), SCALE):
        return []
    evidence = (
        f"in {len(informative)} train/eval pairs, the train output equals the expected eval output, and in the "
        "eval output rows are dropped to x and the others' branches scaled: the modes are swapped"
    )
    ids = [i for p in informative for i in p.ids if not _passed(p, i)]
    return [Finding("deterministic-inverted", ids, evidence)]


def _active_at_eval(pairs: list[_Pair], informative: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """The eval output, like the train output, is stochastic depth of the expected eval output."""
    tols = [p.tol(rtol, atol) for p in pairs]
    bases = [p.x for p in pairs]
    branches = [p.outputs[3] - p.x for p in pairs]
    eval_fits = _fits([p.outputs[1] for p in pairs], bases, branches, tols)
    train_fits = _fits([p.outputs[0] for p in pairs], bases, branches, tols)
    if eval_fits is None or train_fits is None:
        return []
    if not (_is(_common_scale(eval_fits), SCALE) and _is(_common_scale(train_fits), SCALE)):
        return []
    sharing = _sharing(eval_fits)
    if not _fraction_agrees(sharing.kept, sharing.total, KEEP):
        return []
    ids = [p.eval.case_id for p in pairs if not p.eval.passed]
    evidence = (
        f"in {len(ids)} eval cases, rows of the expected output are dropped to x and the others' branches "
        f"scaled by 1/0.75 ({sharing.describe()}), as in training"
    )
    return [Finding("dropout-active-at-eval", ids, evidence)]


def _residual_missing(pairs: list[_Pair], informative: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """The eval output plus x is the expected eval output: the block returns its branch alone."""
    for p in pairs:
        _, evaluation, _, expected_eval = p.outputs
        if not _close(evaluation + p.x, expected_eval, p.tol(rtol, atol)):
            return []
    ids = [p.eval.case_id for p in pairs if not p.eval.passed]
    same_mask = [p for p in pairs if _close(p.outputs[0] + p.x, p.outputs[2], p.tol(rtol, atol))]
    ids += [p.train.case_id for p in same_mask if not p.train.passed]
    evidence = f"in {len(pairs)} eval cases, your output plus x equals the expected output"
    if len(same_mask) == len(pairs):
        evidence += ", and in training too"
        return [Finding("residual-missing", ids, evidence)]
    # The train outputs are wrong in another way as well: set them against the branch alone.
    rest = [p for p in pairs if p not in same_mask]
    also = _train_findings(rest, [p for p in rest if p in informative], rtol, atol, residual=False)
    return [Finding("residual-missing", ids, evidence), *also]


def _eval_mismatch(pairs: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """Eval wrong, and no known cause: say whether the rest of the block behaves, which places the
    difference in the branch (the Dense layer, its parameters, the ReLU) or around it.

    Outputs alone cannot tell other parameters from another computation, so this is ``eval-mismatch``
    either way; ``params-mismatch`` is left to the variants, which make the key mistakes exactly.
    """
    eval_wrong = [p for p in pairs if not p.eval.passed]
    if not eval_wrong:
        return []
    ids = [p.eval.case_id for p in eval_wrong]
    evidence = f"the eval output differs from the expected one in {len(eval_wrong)} cases"
    if not any(np.any(p.outputs[1]) for p in eval_wrong):
        evidence += "; it is 0 in every element, as if nothing were computed"
    elif _same_rows_dropped(pairs, rtol, atol):
        ids += [p.train.case_id for p in eval_wrong if not p.train.passed]
        evidence += (
            "; in training the same rows are dropped as expected and the other rows are x + (your eval - x) / 0.75, "
            "so the stochastic depth itself is right and the difference lies in the branch: the Dense layer, "
            "its parameters, or the ReLU"
        )
    return [Finding("eval-mismatch", ids, evidence)]


def _same_rows_dropped(pairs: list[_Pair], rtol: float, atol: float) -> bool:
    for p in pairs:
        train, evaluation, expected_train, expected_eval = p.outputs
        tol = p.tol(rtol, atol)
        own = _fit(train, p.x, evaluation - p.x, tol)
        expected = _fit(expected_train, p.x, expected_eval - p.x, tol)
        if own is None or expected is None or (own.scale is not None and not _is(own.scale, SCALE)):
            return False
        if _units(own, (1,)) is None:
            return False
        rows = own.visible.any(axis=1) & expected.visible.any(axis=1)  # rows where both show their draw
        if not np.array_equal(own.kept.any(axis=1)[rows], expected.kept.any(axis=1)[rows]):
            return False
    return any(np.any(p.outputs[1]) for p in pairs)


def _passed(pair: _Pair, case_id: str) -> bool:
    return (pair.train if case_id == pair.train.case_id else pair.eval).passed

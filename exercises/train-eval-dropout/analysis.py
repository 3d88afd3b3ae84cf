"""Properties of train/eval outputs that need no exact RNG, for the exercise train-eval-dropout.

Every case runs in both modes. For one input, the reference's eval output is the Dense output, and its
train output keeps each unit either at 0 or at exactly twice the eval output. From the submission's pair
of outputs this module recognises mistakes however they were written: the modes swapped, dropout never
or always on, another mask, another scale (so another rate, or no rescaling), other parameters. A finding
is made only when every informative pair agrees with it; anything else is left to the generic
``values-mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.exercise.evidence import Finding, Observation, in_both_modes

MODE = "train"  # the expanded parameter, and its labels
TRAIN, EVAL = "train", "eval"
SCALE_RTOL = 1e-4


@dataclass(frozen=True)
class _Pair:
    group: str
    train: Observation
    eval: Observation

    @property
    def ids(self) -> list[str]:
        return [self.train.case_id, self.eval.case_id]


@dataclass(frozen=True)
class _Dropout:
    """``out`` seen as a dropout of ``base``: one scale for the kept units, the others exactly 0."""

    scale: float | None  # None when every visible unit was dropped
    visible: np.ndarray  # units where dropping shows: the base is not ~0
    kept: np.ndarray  # visible units that were kept

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def n_visible(self) -> int:
        return int(self.visible.sum())


def _pairs(observations: list[Observation]) -> list[_Pair]:
    return [
        _Pair(group, train, evaluation)
        for group, train, evaluation in in_both_modes(observations, parameter=MODE, modes=(TRAIN, EVAL))
        if train.actual is not None and evaluation.actual is not None
    ]


def _dropout_of(out: np.ndarray, base: np.ndarray, atol: float) -> _Dropout | None:
    """Whether every unit of ``out`` is 0 or one common multiple of ``base``; None if not."""
    if out.shape != base.shape or not np.all(np.isfinite(out)):
        return None
    out, base = out.astype(np.float64), base.astype(np.float64)
    visible = np.abs(base) > 10 * atol  # where dropping a unit changes the output
    if not visible.any() or np.any(np.abs(out[~visible]) > 10 * atol):
        return None
    kept = visible & (np.abs(out) > atol)
    if not kept.any():
        return _Dropout(None, visible, kept)
    ratios = out[kept] / base[kept]
    scale = float(np.median(ratios))
    if scale <= 0 or not np.allclose(ratios, scale, rtol=SCALE_RTOL, atol=0):
        return None
    return _Dropout(scale, visible, kept)


def _drops_something(drops: list[_Dropout]) -> bool:
    """Pooled over cases: a short vector may keep all its units by chance, many cannot."""
    return sum(d.n_kept for d in drops) < sum(d.n_visible for d in drops)


def _a_half_mask(drops: list[_Dropout]) -> bool:
    """Dropout(0.5), pooled over cases: some units dropped, about half kept. An output that is 0 everywhere
    keeps nothing, so it shows neither a mask nor a scale (``np.zeros`` is not a dropout)."""
    return _drops_something(drops) and _fraction_agrees(drops, 0.5)


def _random_mask(drops: list[_Dropout], bases: list[np.ndarray]) -> bool:
    """A dropout mask ignores the sign of what it drops; a ReLU or a clip drops exactly the negatives."""
    dropped_signs = np.concatenate([np.sign(b[d.visible & ~d.kept]) for d, b in zip(drops, bases, strict=True)])
    kept_signs = np.concatenate([np.sign(b[d.kept]) for d, b in zip(drops, bases, strict=True)])
    if dropped_signs.size == 0 or kept_signs.size == 0:
        return True
    sign_aligned = (np.all(dropped_signs < 0) and np.all(kept_signs > 0)) or (
        np.all(dropped_signs > 0) and np.all(kept_signs < 0)
    )
    return not sign_aligned


def _fraction_agrees(drops: list[_Dropout], keep: float) -> bool:
    """Whether the share of kept units fits a keep probability, within what chance allows."""
    kept, visible = sum(d.n_kept for d in drops), sum(d.n_visible for d in drops)
    if not 0 < keep <= 1 or visible == 0:
        return False
    return abs(kept / visible - keep) <= 4 * np.sqrt(keep * (1 - keep) / visible) + 0.05


def _scale_is(drops: list[_Dropout], value: float) -> bool:
    return all(d.scale is None or np.isclose(d.scale, value, rtol=1e-3) for d in drops)


def _common_scale(drops: list[_Dropout]) -> float | None:
    scales = [d.scale for d in drops if d.scale is not None]
    if not scales or not np.allclose(scales, scales[0], rtol=SCALE_RTOL * 10, atol=0):
        return None
    return float(np.median(scales))


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _ids(pairs: list[_Pair]) -> list[str]:
    return [i for p in pairs for i in p.ids]


def _kept_percent(drops: list[_Dropout]) -> str:
    kept, visible = sum(d.n_kept for d in drops), sum(d.n_visible for d in drops)
    return f"{kept} of {visible} units kept ({100 * kept / visible:.0f}%)"


def analyze(observations: list[Observation], *, rtol: float, atol: float) -> list[Finding]:
    """Findings supported by every informative train/eval pair; none when the evidence is mixed."""
    pairs = _pairs(observations)
    informative = [p for p in pairs if not _close(p.train.expected, p.eval.expected, rtol, atol)]
    wrong = [p for p in informative if not (p.train.passed and p.eval.passed)]
    if not wrong:
        return []
    for check in (_inverted, _never_active, _active_at_eval, _train_only, _params):
        found = check(pairs, wrong, rtol, atol)
        if found:
            return found
    return []


def _inverted(pairs: list[_Pair], wrong: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    drops = []
    for p in wrong:
        drop = _dropout_of(p.eval.actual, p.eval.expected, atol)
        if drop is None or not _close(p.train.actual, p.eval.expected, rtol, atol):
            return []
        drops.append(drop)
    bases = [p.eval.expected for p in wrong]
    if not (_a_half_mask(drops) and _scale_is(drops, 2.0) and _random_mask(drops, bases)):
        return []
    evidence = (
        f"in {len(wrong)} train/eval pairs, the train output equals the expected eval output, and the eval "
        "output has units dropped to 0 and the rest scaled: the modes are swapped"
    )
    return [Finding("deterministic-inverted", _ids(wrong), evidence)]


def _never_active(pairs: list[_Pair], wrong: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    for p in wrong:
        if not (p.eval.passed and _close(p.train.actual, p.eval.actual, rtol, atol)):
            return []
    evidence = (
        f"in {len(wrong)} train/eval pairs whose expected outputs differ, the train output equals the eval output"
    )
    return [Finding("dropout-never-active", [p.train.case_id for p in wrong], evidence)]


def _active_at_eval(pairs: list[_Pair], wrong: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    drops, train_drops = [], []
    for p in wrong:
        drop = _dropout_of(p.eval.actual, p.eval.expected, atol)
        train_drop = _dropout_of(p.train.actual, p.eval.expected, atol)
        if drop is None or train_drop is None:
            return []
        drops.append(drop)
        train_drops.append(train_drop)
    bases = [p.eval.expected for p in wrong]
    if not (_a_half_mask(drops) and _a_half_mask(train_drops)):
        return []
    if not (_scale_is(drops, 2.0) and _random_mask(drops, bases) and _random_mask(train_drops, bases)):
        return []
    evidence = (
        f"in {len(wrong)} eval cases, units of the expected output are dropped to 0 and the rest scaled "
        f"({_kept_percent(drops)}), and the train outputs are dropped as well"
    )
    return [Finding("dropout-active-at-eval", [p.eval.case_id for p in wrong], evidence)]


def _train_only(pairs: list[_Pair], wrong: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """Eval right everywhere, train wrong: the train outputs say which part of Dropout differs."""
    if not all(p.eval.passed for p in pairs):
        return []
    drops = [_dropout_of(p.train.actual, p.eval.actual, atol) for p in wrong]
    if any(d is None for d in drops):
        return []
    drops = [d for d in drops if d is not None]
    scale = _common_scale(drops)
    if scale is None:
        return []
    ids = [p.train.case_id for p in wrong]
    kept = _kept_percent(drops)
    if not _drops_something(drops) or not _random_mask(drops, [p.eval.actual for p in wrong]):
        return []  # nothing dropped anywhere, or exactly the units of one sign: not a dropout
    # A dropout keeps each unit with probability 1 - r and scales it by 1 / (1 - r): the kept fraction must
    # agree with the scale, or the scale comes from something else (a factor applied in training, say).
    keep = 0.5 if np.isclose(scale, 1.0, rtol=1e-3) else 1.0 / scale
    if not _fraction_agrees(drops, keep):
        return []
    if np.isclose(scale, 2.0, rtol=1e-3):
        evidence = (
            f"in {len(wrong)} train cases every unit is 0 or exactly 2× the eval output ({kept}), as Dropout(0.5) "
            "makes it, but other units are dropped than with the expected dropout key"
        )
        return [Finding("dropout-rng-mismatch", ids, evidence)]
    if np.isclose(scale, 1.0, rtol=1e-3):
        evidence = f"in {len(wrong)} train cases the kept units equal the eval output instead of twice it ({kept})"
        return [Finding("dropout-not-rescaled", ids, evidence)]
    rate = 1.0 - 1.0 / scale
    evidence = (
        f"in {len(wrong)} train cases every unit is 0 or {scale:.4g}× the eval output ({kept}); "
        f"a scale of {scale:.4g} = 1/(1 - r) means a rate of r = {rate:.3g}"
    )
    return [Finding("dropout-rate-wrong", ids, evidence, {"rate": f"{rate:.3g}", "scale": f"{scale:.4g}"})]


def _params(pairs: list[_Pair], wrong: list[_Pair], rtol: float, atol: float) -> list[Finding]:
    """Eval wrong: say whether Dropout itself behaves, which places the difference before it.

    Outputs alone cannot tell other parameters from another computation, so this is ``eval-mismatch``
    either way; ``params-mismatch`` is left to the variants, which make the key mistakes exactly.
    """
    eval_wrong = [p for p in pairs if not p.eval.passed]
    if not eval_wrong:
        return []
    ids = [p.eval.case_id for p in eval_wrong]
    evidence = f"the eval output differs from the expected one in {len(eval_wrong)} cases"
    if not any(np.any(p.eval.actual) for p in eval_wrong):
        evidence += "; it is 0 in every unit, as if nothing were computed"
    elif _dropout_behaves(wrong, atol):
        # Then the train outputs are wrong only as a consequence: the same finding covers them.
        ids += [p.train.case_id for p in eval_wrong if not p.train.passed]
        evidence += (
            "; in training the same units are dropped as expected and the rest are exactly 2× your own eval "
            "output, so Dropout itself is right and the difference lies elsewhere: the Dense layer, its "
            "parameters, or an operation before or after Dropout"
        )
    return [Finding("eval-mismatch", ids, evidence)]


def _dropout_behaves(wrong: list[_Pair], atol: float) -> bool:
    for p in wrong:
        own = _dropout_of(p.train.actual, p.eval.actual, atol)
        expected = _dropout_of(p.train.expected, p.eval.expected, atol)
        if own is None or expected is None or (own.scale is not None and not np.isclose(own.scale, 2.0, rtol=1e-3)):
            return False
        both = own.visible & expected.visible  # compare the masks where both outputs show them
        if not np.array_equal(own.kept[both], expected.kept[both]):
            return False
    return True

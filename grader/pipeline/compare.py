"""Comparing one output with its expected value: pure functions from two arrays (``compare_arrays``), or two
trees of arrays (``compare_tree``), to a ``Comparison``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.pipeline import tree
from grader.pipeline.tree import Tree
from grader.report.codes import Code
from grader.report.schema import Comparison, ElementRow, Number
from grader.sandbox.protocol import ObjectValue, TooLargeValue

WORST = 5
SHOW_ALL_UP_TO = 16
HEAD, TAIL = 3, 2
# The rounding term of the tolerance, in units of the expected dtype's epsilon times the largest |expected|
# of the output: float32 outputs that are sums of large terms carry an absolute rounding error of that
# order on every element, small ones included, whatever the order of the sum (see ``scale_atol``).
ROUNDING_EPS = 8


def as_number(value: float) -> Number:
    """A float for a report: JSON has no NaN or infinity, so those are named."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _errors(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        abs_err = np.abs(actual - expected)
        rel_err = np.where(expected != 0, abs_err / np.abs(expected), np.where(abs_err == 0, 0.0, np.inf))
    return abs_err, rel_err


def _worst_indices(abs_err: np.ndarray, bad: np.ndarray) -> list[int]:
    """Flat indices of the mismatched elements with the largest errors, NaN errors first."""
    bad_idx = np.flatnonzero(bad)
    if bad_idx.size == 0:
        return []
    keys = np.where(np.isnan(abs_err[bad_idx]), np.inf, abs_err[bad_idx])
    order = np.argsort(-keys, kind="stable")[:WORST]
    return [int(i) for i in bad_idx[order]]


def _row_indices(size: int, worst: list[int]) -> list[int]:
    if size <= SHOW_ALL_UP_TO:
        return list(range(size))
    chosen = set(range(HEAD)) | set(range(size - TAIL, size))
    for i in worst:
        chosen.update(j for j in (i - 1, i, i + 1) if 0 <= j < size)
    return sorted(chosen)


def _rows(
    actual: np.ndarray,
    expected: np.ndarray,
    abs_err: np.ndarray,
    rel_err: np.ndarray,
    bad: np.ndarray,
    indices: list[int],
) -> list[ElementRow]:
    return [
        ElementRow(
            index=i,
            expected=as_number(expected[i]),
            actual=as_number(actual[i]),
            abs_error=as_number(abs_err[i]),
            rel_error=as_number(rel_err[i]),
            ok=not bool(bad[i]),
        )
        for i in indices
    ]


def scale_atol(expected: np.ndarray) -> float:
    """The absolute error that rounding alone can put on any element of ``expected``: ``ROUNDING_EPS`` x the
    dtype's epsilon x the largest finite |expected|. An output element near zero that is a sum of terms
    around 1e4 is exact only to about eps x 1e4, in the reference as in a correct submission that sums in
    another order; a per-element ``rtol·|expected|`` cannot allow for that. 0 for integer and bool outputs."""
    if expected.dtype.kind not in "fc" or expected.size == 0:
        return 0.0
    magnitudes = np.abs(expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64))
    finite = magnitudes[np.isfinite(magnitudes)]
    if finite.size == 0:
        return 0.0
    return float(ROUNDING_EPS * np.finfo(expected.dtype).eps * finite.max())


def close_enough(actual: np.ndarray, expected: np.ndarray, *, rtol: float, atol: float) -> np.ndarray:
    """Per element: ``|a - e| <= atol + scale_atol(e) + rtol·|e|``, NaN equal only to NaN."""
    exp = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
    act = actual.astype(np.complex128 if actual.dtype.kind == "c" else np.float64)
    return np.isclose(act, exp, rtol=rtol, atol=atol + scale_atol(expected), equal_nan=True)


def compare_arrays(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    rtol: float,
    atol: float,
    actual_type: str | None = None,
    actual_dtype: str | None = None,
) -> Comparison:
    """Compares shape, dtype and values (``|a - e| <= atol + scale_atol(e) + rtol·|e|``, NaN equal only to NaN).

    ``actual_dtype`` names the dtype the submission returned when the array arrived widened (a bfloat16
    or float128 output travels as float32 or float64).
    """
    actual_dtype = actual_dtype or actual.dtype.name
    base: dict[str, Any] = {  # the Comparison's fields every outcome below shares
        "expected_shape": list(expected.shape),
        "actual_shape": list(actual.shape),
        "expected_dtype": expected.dtype.name,
        "actual_dtype": actual_dtype,
        "actual_type": actual_type,
        "rtol": rtol,
        "atol": atol,
        "scale_atol": scale_atol(expected),
    }
    if actual.shape != expected.shape:
        return Comparison(
            ok=False,
            kind="shape-mismatch",
            message=f"expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}",
            **base,
        )
    exp = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64).reshape(-1)
    act = actual.astype(np.complex128 if actual.dtype.kind == "c" else np.float64).reshape(-1)
    abs_err, rel_err = _errors(act, exp)
    bad = ~close_enough(actual.reshape(-1), expected.reshape(-1), rtol=rtol, atol=atol)
    worst = _worst_indices(abs_err, bad)
    finite = np.isfinite(abs_err)
    stats: dict[str, Any] = {
        "n_elements": int(exp.size),
        "n_mismatched": int(bad.sum()),
        "max_abs_error": as_number(abs_err[finite].max()) if finite.any() else None,
        "max_rel_error": as_number(rel_err[finite].max()) if finite.any() else None,
        "nan_count": int(np.isnan(act).sum()),
        "inf_count": int(np.isinf(act).sum()),
        "worst": worst,
        "rows": _rows(
            act.real if act.dtype.kind != "c" else np.abs(act),
            exp.real if exp.dtype.kind != "c" else np.abs(exp),
            abs_err,
            rel_err,
            bad,
            _row_indices(exp.size, worst),
        ),
    }
    if bad.any():
        return Comparison(
            ok=False,
            kind="values-mismatch",
            message=_values_message(stats, abs_err, rtol, atol, base["scale_atol"]),
            **base,
            **stats,
        )
    if actual_dtype != expected.dtype.name:
        return Comparison(
            ok=False,
            kind="dtype-mismatch",
            message=f"values match, but the dtype is {actual_dtype} instead of {expected.dtype.name}",
            **base,
            **stats,
        )
    return Comparison(ok=True, kind="match", message="matches", **base, **stats)


def _values_message(stats: dict, abs_err: np.ndarray, rtol: float, atol: float, scale: float) -> str:
    n_bad, n = stats["n_mismatched"], stats["n_elements"]
    parts = [f"{n_bad} of {n} element{'s' if n != 1 else ''} differ{'s' if n_bad == 1 else ''}"]
    worst = stats["worst"][0]
    err = abs_err[worst]
    if np.isnan(err):
        parts.append(f"index {worst} is NaN")
    else:
        rounding = f" + rounding {scale:.1e}" if scale >= atol / 100 else ""
        parts.append(
            f"max abs error {err:.2e} at index {worst} exceeds atol={atol:g}{rounding} + rtol={rtol:g}·|expected|"
        )
    if stats["nan_count"] or stats["inf_count"]:
        parts.append(f"the output holds {stats['nan_count']} NaN and {stats['inf_count']} Inf")
    return "; ".join(parts)


def describe_wrong_type(what: str, text: str | None) -> str:
    """The message for an output that is not an array at all: what it is, then its start (``None``: not
    shown, for a hidden case)."""
    if text is None:
        return f"expected an array, got {what}"
    shown = text if len(text) <= 80 else text[:79] + "…"
    return f"expected an array, got {what}: {shown}"


def compare_tree(
    actual: Tree,
    expected: Tree,
    *,
    rtol: float,
    atol: float,
    tolerances: dict[str, tuple[float, float]] | None = None,
) -> Comparison:
    """Compares a tree of outputs: its structure first, then every leaf on its own (``tolerances`` by leaf
    path, else ``rtol``/``atol``). The result is one comparison for the case, with the leaves' comparisons
    in ``leaves``; its numbers and rows are those of the first leaf that fails (or the first leaf)."""
    problems, notes = tree.differences(actual, expected)
    if problems:
        return Comparison(
            ok=False,
            kind="structure-mismatch",
            message=f"expected {tree.describe(expected)}; got {tree.describe(actual)}: " + "; ".join(problems[:4]),
            expected_shape=[],
            expected_dtype="tree",
            actual_type=tree.describe(actual, depth=0),
            rtol=rtol,
            atol=atol,
            notes=notes,
        )
    compared = []
    for path, expected_leaf in tree.leaves(expected):
        leaf_rtol, leaf_atol = (tolerances or {}).get(tree.path_text(path), (rtol, atol))
        assert isinstance(expected_leaf, np.ndarray)  # the reference's leaves are arrays
        comparison = compare_leaf(tree.at(actual, path), expected_leaf, rtol=leaf_rtol, atol=leaf_atol)
        compared.append(comparison.model_copy(update={"path": tree.path_text(path)}))
    return _summed(compared, notes, rtol=rtol, atol=atol)


def compare_leaf(actual: Tree, expected: np.ndarray, *, rtol: float, atol: float) -> Comparison:
    """One leaf: an array compared, or what came back instead of one."""
    if isinstance(actual, np.ndarray):
        return compare_arrays(actual, expected, rtol=rtol, atol=atol)
    base: dict[str, Any] = {
        "expected_shape": list(expected.shape),
        "expected_dtype": expected.dtype.name,
        "rtol": rtol,
        "atol": atol,
    }
    if isinstance(actual, tree.Opaque) and isinstance(actual.value, TooLargeValue):
        shape = tuple(actual.value.shape)
        message = f"the returned array is too large to compare: shape {shape}"
        return Comparison(ok=False, kind="too-large", message=message, actual_shape=list(shape), **base)
    what = tree.describe(actual)
    shown = actual.value.repr if isinstance(actual, tree.Opaque) and isinstance(actual.value, ObjectValue) else None
    message = actual.problem if isinstance(actual, tree.Opaque) and actual.problem else describe_wrong_type(what, shown)
    return Comparison(ok=False, kind="wrong-type", message=message, actual_type=tree.describe(actual, depth=0), **base)


def _summed(compared: list[Comparison], notes: list[str], *, rtol: float, atol: float) -> Comparison:
    if not compared:  # a tree without leaves, matched in structure
        return Comparison(
            ok=True, kind="match", message="matches", expected_shape=[], expected_dtype="tree", rtol=rtol, atol=atol
        )
    failing = [c for c in compared if not c.ok]
    # The case is labelled by its most telling failing leaf: wrong values before a dtype alone, so that a case
    # whose statistics are wrong is never taken for one with right values in another dtype.
    lead = next((c for c in failing if c.kind != Code.DTYPE_MISMATCH), failing[0]) if failing else compared[0]
    kept = [c if not c.ok else c.model_copy(update={"rows": [], "worst": []}) for c in compared]
    if failing:
        message = "; ".join(f"{c.path}: {c.message}" for c in failing[:3])
        if len(failing) > 3:
            message += f"; and {len(failing) - 3} more leaves"
    else:
        message = f"matches ({len(compared)} leaves)"
    if notes:
        message += " (" + "; ".join(notes[:2]) + ")"
    return lead.model_copy(
        update={
            "ok": not failing,
            "kind": lead.kind,
            "message": message,
            "rtol": rtol,
            "atol": atol,
            "n_elements": sum(c.n_elements for c in compared),
            "n_mismatched": sum(c.n_mismatched for c in compared),
            "leaves": kept,
            "notes": notes,
        }
    )

"""compare_arrays: a pure function, tested with tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grader.pipeline.compare import as_number, compare_arrays

F32 = np.float32


def cmp(actual, expected, rtol=1e-5, atol=1e-6):
    return compare_arrays(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    ("actual", "expected", "kind", "n_bad"),
    [
        (np.array([1, 2, 3], F32), np.array([1, 2, 3], F32), "match", 0),
        (np.array([1, 2, 3.00001], F32), np.array([1, 2, 3], F32), "match", 0),
        (np.array([1, 2, 3.001], F32), np.array([1, 2, 3], F32), "values-mismatch", 1),
        (np.array([0.0000009], F32), np.array([0], F32), "match", 0),
        (np.array([0.000002], F32), np.array([0], F32), "values-mismatch", 1),
        (np.array([np.nan, 1], F32), np.array([0, 1], F32), "values-mismatch", 1),
        (np.array([np.nan, 1], F32), np.array([np.nan, 1], F32), "match", 0),
        (np.array([np.inf, 1], F32), np.array([1, 1], F32), "values-mismatch", 1),
        (np.array([[1, 2, 3]], F32), np.array([1, 2, 3], F32), "shape-mismatch", 0),
        (np.array([1, 2], F32), np.array([1, 2, 3], F32), "shape-mismatch", 0),
        (np.array([1, 2, 3], np.float64), np.array([1, 2, 3], F32), "dtype-mismatch", 0),
        (np.array([1, 2, 3], np.int32), np.array([1, 2, 3], F32), "dtype-mismatch", 0),
        (np.array([], F32), np.array([], F32), "match", 0),
    ],
)
def test_kinds(actual, expected, kind: str, n_bad: int) -> None:
    result = cmp(actual, expected)
    assert result.kind == kind
    assert result.ok is (kind == "match")
    assert result.n_mismatched == n_bad


def test_relative_tolerance_scales_with_expected() -> None:
    assert cmp(np.array([1e4 + 0.09], F32), np.array([1e4], F32)).ok
    assert not cmp(np.array([1e4 + 0.2], F32), np.array([1e4], F32)).ok


def test_shape_message_names_both_shapes() -> None:
    result = cmp(np.zeros((1, 4), F32), np.zeros(4, F32))
    assert result.message == "expected shape (4,), got (1, 4)"
    assert result.rows == []


def test_values_message_and_statistics() -> None:
    expected = np.array([1.0, 2.0, 3.0, 4.0], F32)
    actual = np.array([1.0, 2.5, 3.0, 0.0], F32)
    result = cmp(actual, expected)
    assert result.n_mismatched == 2 and result.n_elements == 4
    assert result.worst == [3, 1]
    assert result.max_abs_error == pytest.approx(4.0)
    assert result.max_rel_error == pytest.approx(1.0)
    assert result.message.startswith("2 of 4 elements differ; max abs error 4.00e+00 at index 3")
    assert [r.ok for r in result.rows] == [True, False, True, False]


def test_nan_is_called_out_first() -> None:
    result = cmp(np.array([0, np.nan, 5], F32), np.array([0, 1, 2], F32))
    assert result.worst[0] == 1
    assert result.nan_count == 1 and result.inf_count == 0
    assert "NaN" in result.message
    assert result.rows[1].actual == "nan"


def test_long_vectors_are_elided_around_the_worst_elements() -> None:
    expected = np.arange(100, dtype=F32)
    actual = expected.copy()
    actual[50] += 7
    result = cmp(actual, expected)
    shown = [r.index for r in result.rows]
    assert shown == [0, 1, 2, 49, 50, 51, 98, 99]
    assert result.worst == [50]


def test_short_vectors_show_every_element() -> None:
    result = cmp(np.ones(16, F32), np.zeros(16, F32))
    assert [r.index for r in result.rows] == list(range(16))


@pytest.mark.parametrize(
    ("value", "out"), [(1.5, 1.5), (float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")]
)
def test_as_number(value: float, out) -> None:
    assert as_number(value) == out


def test_report_json_never_holds_nan() -> None:
    result = cmp(np.array([np.nan, np.inf], F32), np.array([1, 1], F32))
    text = result.model_dump_json()

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["rows"][0]["actual"] == "nan" and data["rows"][1]["actual"] == "inf"


def test_rounding_term_follows_the_scale_of_the_output() -> None:
    """An element near zero of an output whose other elements are around 1e4 is exact only to about
    eps x 1e4: a reordered sum lands there, a real mistake does not."""
    expected = np.array([-20.0, 3.0e4, -2.5e4], F32)
    reordered = expected + np.array([3e-4, 0, 0], F32)
    assert cmp(reordered, expected).ok
    assert cmp(reordered, expected).scale_atol == pytest.approx(8 * np.finfo(F32).eps * 3.0e4)
    wrong = expected + np.array([0.5, 0, 0], F32)  # far beyond rounding
    assert not cmp(wrong, expected).ok
    # Small outputs keep the old bound: the same 3e-4 error on an output of ones fails.
    assert not cmp(np.array([1.0003, 1.0], F32), np.array([1.0, 1.0], F32)).ok
    # Integer outputs have no rounding term; NaN and Inf do not widen it.
    assert cmp(np.array([1, 2]), np.array([1, 2])).scale_atol == 0.0
    assert cmp(np.array([np.inf, 1.0], F32), np.array([np.inf, 1.0], F32)).scale_atol == pytest.approx(
        8 * np.finfo(F32).eps
    )


def test_float64_outputs_get_a_negligible_rounding_term() -> None:
    expected = np.array([1e4, 1.0])
    assert cmp(expected + np.array([0, 1e-4]), expected).ok is False

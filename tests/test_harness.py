"""Pieces of the child-side harness that can be checked without starting a child."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.pipeline.compare import compare_arrays
from grader.sandbox.isolation import HARNESS
from grader.sandbox.protocol import ArrayValue, Result, encode_frame, parse_message


@pytest.fixture(scope="module")
def harness():  # the harness is a standalone script, loaded here by path as the child does
    spec = importlib.util.spec_from_file_location("grader_harness_under_test", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strip_sys_path_drops_hidden_folders_but_keeps_the_environment(harness, monkeypatch, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    venv = checkout / ".venv"
    site = venv / "lib" / "site-packages"
    for folder in (site, checkout / "exercises"):
        folder.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "path", ["", str(checkout), str(site), str(checkout / "exercises"), "/usr/lib/python3"])
    harness._strip_sys_path([str(checkout), str(checkout / "exercises")])
    assert sys.path == [str(site), "/usr/lib/python3"]


def test_encode_value_describes_non_arrays(harness) -> None:
    import numpy as np

    pair = harness.encode_value((1, 2), 10)  # a tuple is a tree; plain numbers are 0-d arrays in it
    assert pair["kind"] == "tree" and pair["node"] == "tuple"
    assert [item["kind"] for item in pair["items"]] == ["array", "array"] and pair["items"][0]["shape"] == []
    assert harness.encode_value({"params": 1}, 10)["type"] == "dict"
    assert harness.encode_value({1: "non-string key"}, 10)["kind"] == "object"  # not a tree
    deep: object = 1
    for _ in range(harness.MAX_TREE_DEPTH + 1):
        deep = [deep]
    assert harness.encode_value(deep, 10)["kind"] == "object"  # too deep: described, not sent
    assert harness.encode_value(tuple(range(harness.MAX_TREE_LEAVES + 1)), 10)["kind"] == "object"
    encoded = harness.encode_value(np.arange(3, dtype=np.float32), 10)
    assert encoded["kind"] == "array" and encoded["wire_dtype"] == "<f4" and encoded["shape"] == [3]
    assert harness.encode_value(np.zeros(11), 10)["kind"] == "too-large"
    assert harness.encode_value(np.array(["a"]), 10)["kind"] == "object"


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        dtype=st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(), hnp.complex_number_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
    )
)
def test_any_returned_array_travels_and_compares_without_raising(harness, array: np.ndarray) -> None:
    """Random return values through the harness's encoding, the channel's validation and the comparison."""
    encoded = harness.encode_value(array, 10_000)
    frame = encode_frame({"type": "result", "case": "c", "value": encoded})
    result = parse_message(frame[4:])
    assert isinstance(result, Result) and isinstance(result.value, ArrayValue)
    actual = result.value.to_numpy(10_000)
    expected = np.zeros(actual.shape, np.float32)
    comparison = compare_arrays(actual, expected, rtol=1e-5, atol=1e-6, actual_dtype=result.value.dtype)
    assert comparison.kind in ("match", "values-mismatch", "dtype-mismatch")
    json.loads(comparison.model_dump_json())


def test_the_fork_server_and_the_grader_agree_on_what_a_request_hands_over(harness) -> None:
    """The harness cannot import the grader: the number of pipes a fork request carries is written on both
    sides, and pinned equal here."""
    from grader.sandbox import forks

    assert harness.CHILD_FDS == forks.CHILD_FDS == 5

"""The channel from the child: framing and validation refuse anything malformed, and never crash."""

from __future__ import annotations

import base64
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.sandbox import protocol
from grader.sandbox.protocol import (
    ArrayValue,
    FrameReader,
    ProtocolError,
    Result,
    WireLimits,
    encode_arg,
    encode_frame,
    parse_message,
)


def array_value(array: np.ndarray, **override) -> ArrayValue:
    data = {
        "kind": "array",
        "type": "numpy.ndarray",
        "dtype": array.dtype.name,
        "wire_dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode(),
    }
    data.update(override)
    return ArrayValue.model_validate(data)


def test_frames_split_across_reads() -> None:
    frames = encode_frame({"type": "done"}) + encode_frame({"type": "hello", "python": "3"})
    reader = FrameReader()
    got = []
    for i in range(len(frames)):
        got += reader.feed(frames[i : i + 1])
    assert [parse_message(f).type for f in got] == ["done", "hello"]
    assert reader.pending == 0


def test_oversized_frame_is_refused() -> None:
    reader = FrameReader(max_frame=10)
    with pytest.raises(ProtocolError, match="exceeds"):
        reader.feed((11).to_bytes(4, "big") + b"x" * 11)


def test_array_roundtrip() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(array_value(array).to_numpy(100), array)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"wire_dtype": "|O"}, "not allowed"),
        ({"wire_dtype": "<U4"}, "not allowed"),
        ({"shape": [5]}, "do not fit"),
        ({"shape": [1000, 1000]}, "exceed the limit"),
        ({"data": "!!!"}, "not base64"),
    ],
)
def test_bad_arrays_are_refused(override: dict, message: str) -> None:
    value = array_value(np.zeros(4, np.float32), **override)
    with pytest.raises(ValueError, match=message):
        value.to_numpy(1000)


def test_unknown_message_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_message(b'{"type": "verdict", "status": "passed"}')


def test_result_with_an_array() -> None:
    payload = encode_frame({"type": "result", "case": "a", "value": array_value(np.ones(2, np.float32)).model_dump()})
    message = parse_message(payload[4:])
    assert isinstance(message, Result) and message.case == "a"


def test_encode_arg() -> None:
    assert encode_arg(1.5) == {"type": "float", "value": 1.5}
    assert encode_arg(True) == {"type": "bool", "value": True}
    arg = encode_arg(np.ones(2, np.float32), array_type="jax")
    assert arg["array_type"] == "jax" and arg["dtype"] == "<f4" and arg["shape"] == [2]
    with pytest.raises(TypeError):
        encode_arg(object())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_escape_as_anything_but_protocol_errors(data: bytes) -> None:
    reader = FrameReader(max_frame=1000)
    try:
        for frame in reader.feed(data):
            parse_message(frame)
    except ProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["hello", "imported", "result", "done", "other"]),
    st.dictionaries(
        st.sampled_from(["case", "value", "error", "names", "stdout", "python", "kind", "data"]),
        json_values,
        max_size=6,
    ),
)
def test_random_messages_are_validated_or_refused(kind: str, fields: dict) -> None:
    frame = encode_frame({"type": kind, **fields})
    try:
        message = parse_message(frame[4:])
    except ProtocolError:
        return
    value = getattr(message, "value", None)
    if isinstance(value, ArrayValue):
        with contextlib.suppress(ValueError):
            value.to_numpy(1000)


# Bounds: every string and list of a message, and what a frame claims, checked against the job's limits.
LIMITS = WireLimits(max_elements=1000, capture_bytes=8192, file_bytes=64 * 2**20)


@pytest.fixture(scope="module")
def harness():  # a standalone script, loaded by path as the child does
    import importlib.util

    from grader.sandbox.isolation import HARNESS

    spec = importlib.util.spec_from_file_location("grader_harness_for_bounds", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_protocol_bounds_are_the_harness_limits(harness) -> None:
    from grader.exercise.spec import Limits

    assert protocol.MAX_TEXT == harness.MAX_TEXT
    assert protocol.MAX_FRAMES == harness.MAX_FRAMES
    assert protocol.MAX_DIMS == harness.MAX_DIMS
    assert protocol.MAX_NAMES == harness.MAX_NAMES
    assert (protocol.MAX_TREE_DEPTH, protocol.MAX_TREE_LEAVES) == (harness.MAX_TREE_DEPTH, harness.MAX_TREE_LEAVES)
    capture = Limits.model_fields["capture_bytes"].metadata
    assert max(m.le for m in capture if hasattr(m, "le")) == protocol.MAX_CAPTURE


def test_what_the_harness_sends_at_its_limits_is_accepted(harness) -> None:
    import types

    module = types.ModuleType("many")
    for i in range(protocol.MAX_NAMES + 50):
        setattr(module, f"f{i}", print)
    names = harness._callable_names(module)
    assert len(names) == protocol.MAX_NAMES
    try:
        raise ValueError("x" * 10 * protocol.MAX_TEXT)
    except ValueError as exc:
        error = harness.describe_error(exc)
    deep = {**error, "frames": error["frames"] * 100}  # as many as a deep recursion: the harness keeps the last
    deep["frames"] = deep["frames"][-harness.MAX_FRAMES :]
    too_large = harness.encode_value(np.zeros((1,) * 32, np.float32), 1000)  # more dimensions than MAX_DIMS
    message = {"type": "imported", "names": names, "error": deep}
    assert parse_message(encode_frame(message)[4:], limits=LIMITS).type == "imported"
    result = {"type": "result", "case": "a", "value": too_large}
    assert parse_message(encode_frame(result)[4:], limits=LIMITS).type == "result"


FORGED_ERROR = {"type": "OSError", "message": "x"}


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({"type": "result", "case": "a", "error": {**FORGED_ERROR, "message": "x" * 99_000}}, "at most 4000"),
        ({"type": "result", "case": "a", "error": {**FORGED_ERROR, "type": "T" * 4001}}, "at most 4000"),
        (
            {"type": "result", "case": "a", "error": {**FORGED_ERROR, "frames": [{"file": "f", "function": "g"}] * 41}},
            "at most 40 items",
        ),
        ({"type": "imported", "names": ["n"] * 201}, "at most 200 items"),
        ({"type": "hello", "python": "3", "modules": {f"m{i}": "1" for i in range(300)}}, "at most 200 items"),
        ({"type": "hello", "python": "3" * 300}, "at most 256"),
        ({"type": "imported", "stdout": {"text": "x" * 8193, "size": 8193, "truncated": True}}, "exceeds the limit"),
        ({"type": "imported", "stdout": {"text": "", "size": 10**15, "truncated": True}}, "file size limit"),
        ({"type": "imported", "stdout": {"text": "x", "size": 9000, "truncated": False}}, "not marked truncated"),
        (
            {
                "type": "result",
                "case": "a",
                "value": {"kind": "too-large", "type": "t", "dtype": "f4", "shape": [2, 3]},
            },
            "not too large",
        ),
    ],
)
def test_forged_messages_beyond_the_bounds_are_protocol_errors(message: dict, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse_message(encode_frame(message)[4:], limits=LIMITS)


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"shape": [10**15]}, "exceed the limit of 1000"),
        ({"shape": [2**53] * 8}, "exceed the limit of 1000"),
        ({"shape": [5]}, "do not fit"),
        ({"data": "A" * 99_000}, "do not fit"),
        ({"wire_dtype": "|O"}, "not allowed"),
    ],
)
def test_arrays_that_claim_what_their_data_is_not_are_protocol_errors(override: dict, why: str) -> None:
    value = {**array_value(np.zeros(4, np.float32)).model_dump(), **override}
    frame = encode_frame({"type": "result", "case": "a", "value": value})
    with pytest.raises(ProtocolError, match=why):
        parse_message(frame[4:], limits=LIMITS)
    assert parse_message(frame[4:]).type == "result"  # without limits only the model's own bounds apply


def test_an_honest_array_and_capture_pass_the_limits() -> None:
    value = array_value(np.arange(7, dtype=np.float64)).model_dump()
    capture = {"text": "é" * 8192, "size": 10**6, "truncated": True}
    frame = encode_frame({"type": "result", "case": "a", "value": value, "stdout": capture})
    message = parse_message(frame[4:], limits=LIMITS)
    assert isinstance(message, Result) and isinstance(message.value, ArrayValue)
    assert np.array_equal(message.value.to_numpy(1000), np.arange(7.0))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["hello", "imported", "result"]),
    st.dictionaries(
        st.sampled_from(["case", "value", "error", "names", "stdout", "python", "kind", "data", "shape"]),
        json_values,
        max_size=6,
    ),
)
def test_random_messages_under_limits_are_validated_or_refused(kind: str, fields: dict) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(encode_frame({"type": kind, **fields})[4:], limits=LIMITS)

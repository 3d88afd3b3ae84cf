"""The channel from the child: framing and validation refuse anything malformed, and never crash."""

from __future__ import annotations

import base64
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.sandbox.protocol import (
    ArrayValue,
    FrameReader,
    ProtocolError,
    Result,
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

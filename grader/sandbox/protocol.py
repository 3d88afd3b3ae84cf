"""The wire format between the grader and a child running ``harness.py``, from the grader's side.

Everything that comes back from a child is untrusted: frames are bounded in size, each is validated by
a pydantic model, and arrays are rebuilt by numpy from raw little-endian bytes of a plain numeric dtype
with a bounded shape. Nothing is unpickled and no file the child wrote is ever read.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

PROTOCOL_VERSION = 1
FRAME_HEADER = 4
MAX_FRAME_BYTES = 32 * 1024 * 1024
MAX_DIMS = 8
# Dtypes a child may send: plain numbers and booleans, nothing that holds objects.
ALLOWED_DTYPES = frozenset(
    f"{order}{code}"
    for order in "<|"
    for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
)

Text = Annotated[str, Field(max_length=100_000)]
# Every number from the child is bounded: reports do arithmetic with them.
Count = Annotated[int, Field(ge=0, le=2**53)]
LineNo = Annotated[int, Field(ge=0, le=10**9)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WireFrame(_Message):
    file: Text
    line: LineNo | None = None
    function: Text
    code: Text = ""


class WireError(_Message):
    type: Text
    message: Text
    frames: list[WireFrame] = Field(default_factory=list, max_length=100)
    lineno: LineNo | None = None
    offset: LineNo | None = None
    text: Text | None = None
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None


class WireCapture(_Message):
    text: Text = ""
    size: Count = 0
    truncated: bool = False


class ArrayValue(_Message):
    kind: Literal["array"]
    type: Text
    dtype: Text
    wire_dtype: Text
    shape: list[Count] = Field(max_length=MAX_DIMS)
    data: str

    def to_numpy(self, max_elements: int) -> np.ndarray:
        """Rebuilds the array, refusing anything that is not a plain numeric array of the stated shape."""
        if self.wire_dtype not in ALLOWED_DTYPES:
            raise ValueError(f"dtype {self.wire_dtype!r} is not allowed")
        count = math.prod(self.shape)
        if count > max_elements:
            raise ValueError(f"{count} elements exceed the limit of {max_elements}")
        try:
            raw = base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:
            raise ValueError("array data is not base64") from exc
        dtype = np.dtype(self.wire_dtype)
        if len(raw) != count * dtype.itemsize:
            raise ValueError(f"{len(raw)} bytes do not fit shape {self.shape} of {dtype.name}")
        return np.frombuffer(raw, dtype=dtype).reshape(self.shape).astype(dtype.newbyteorder("="))


class ObjectValue(_Message):
    kind: Literal["object"]
    type: Text
    repr: Text
    summary: Text = ""


class TooLargeValue(_Message):
    kind: Literal["too-large"]
    type: Text
    dtype: Text
    shape: list[Count] = Field(max_length=64)


WireValue = Annotated[ArrayValue | ObjectValue | TooLargeValue, Field(discriminator="kind")]


class Hello(_Message):
    type: Literal["hello"]
    python: Text
    modules: dict[str, Text] = Field(default_factory=dict)
    backend: Text | None = None
    preload_error: WireError | None = None
    warmed: bool | None = None  # whether a warm-up ran through (None: there was none)


class Imported(_Message):
    type: Literal["imported"]
    error: WireError | None = None
    names: list[Text] = Field(default_factory=list, max_length=1000)
    entry_point_found: bool = False
    stdout: WireCapture = WireCapture()
    stderr: WireCapture = WireCapture()
    output_limit: bool = False


class Result(_Message):
    type: Literal["result"]
    case: Text
    value: WireValue | None = None
    error: WireError | None = None
    duration_s: Annotated[float, Field(ge=0, le=10**6)] | None = None
    stdout: WireCapture = WireCapture()
    stderr: WireCapture = WireCapture()
    output_limit: bool = Field(default=False, description="a stream reached the file size limit")

    @model_validator(mode="after")
    def _value_or_error(self) -> Result:
        if (self.value is None) == (self.error is None):
            raise ValueError("a result holds either a value or an error")
        return self


class Done(_Message):
    type: Literal["done"]


ChildMessage = Annotated[Hello | Imported | Result | Done, Field(discriminator="type")]
_MESSAGE = TypeAdapter(ChildMessage)


class ProtocolError(Exception):
    """The child sent something that is not a valid message."""


def parse_message(payload: bytes) -> Hello | Imported | Result | Done:
    try:
        return _MESSAGE.validate_json(payload)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ProtocolError(f"the child sent a message the grader cannot accept: {str(exc)[:300]}") from exc


class FrameReader:
    """Splits a byte stream into length-prefixed frames, refusing any frame over ``max_frame`` bytes."""

    def __init__(self, *, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer.extend(data)
        frames = []
        while len(self._buffer) >= FRAME_HEADER:
            size = int.from_bytes(self._buffer[:FRAME_HEADER], "big")
            if size > self.max_frame:
                raise ProtocolError(f"a frame of {size} bytes exceeds the limit of {self.max_frame}")
            if len(self._buffer) < FRAME_HEADER + size:
                break
            frames.append(bytes(self._buffer[FRAME_HEADER : FRAME_HEADER + size]))
            del self._buffer[: FRAME_HEADER + size]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


def encode_frame(message: dict) -> bytes:
    """The framing the harness uses, for tests and tools that speak the protocol."""
    import json

    payload = json.dumps(message, allow_nan=False).encode("utf-8")
    return len(payload).to_bytes(FRAME_HEADER, "big") + payload


def encode_arg(value: object, *, array_type: str = "numpy") -> dict:
    """One argument of a case as the harness's job expects it."""
    if isinstance(value, np.ndarray):
        little = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        return {
            "type": "array",
            "dtype": little.dtype.str,
            "shape": list(value.shape),
            "data": base64.b64encode(little.tobytes()).decode("ascii"),
            "array_type": array_type,
        }
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    raise TypeError(f"cannot send a {type(value).__name__} to a child")

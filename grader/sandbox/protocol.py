"""The wire format between the grader and a child running ``harness.py``, from the grader's side.

Everything that comes back from a child is untrusted: frames are bounded in size, each is validated by
a pydantic model whose every string and list is bounded, what a frame claims (sizes, shapes, the bytes of
an array) is checked against the job's limits (``WireLimits``) and against its own data, and arrays are
rebuilt by numpy from raw little-endian bytes of a plain numeric dtype with a bounded shape. Nothing is
unpickled and no file the child wrote is ever read.

The harness runs alone in the child and cannot import this module: its own limits (``MAX_TEXT``,
``MAX_FRAMES``, ``MAX_DIMS``, the names it lists) are written there again, and a test pins each bound
here to the harness's.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, model_validator

PROTOCOL_VERSION = 1
FRAME_HEADER = 4
MAX_FRAME_BYTES = 32 * 1024 * 1024
MAX_DIMS = 8  # harness.MAX_DIMS: an array with more dimensions is sent as too-large
MAX_TEXT = 4000  # harness.MAX_TEXT: a message, repr, summary or source line is cut to this many characters
MAX_FRAMES = 40  # harness.MAX_FRAMES: the innermost frames of a traceback
MAX_NAMES = 200  # the names a submission defines, as the harness lists them
MAX_SHAPE = 64  # the dimensions a too-large value lists (the harness cuts its shape there)
MAX_SHORT = 256  # versions, dtype and backend names, module names
MAX_TREE_DEPTH = 8  # harness.MAX_TREE_DEPTH: a returned tree nests at most this deep
MAX_TREE_LEAVES = 64  # harness.MAX_TREE_LEAVES: ... and holds at most this many leaves
MAX_CAPTURE = 65536  # the most an exercise's limits.capture_bytes may be: the text of one captured stream
# Dtypes a child may send: plain numbers and booleans, nothing that holds objects.
ALLOWED_DTYPES = frozenset(
    f"{order}{code}"
    for order in "<|"
    for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
)

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Short = Annotated[str, Field(max_length=MAX_SHORT)]
# Every number from the child is bounded: reports do arithmetic with them.
Count = Annotated[int, Field(ge=0, le=2**53)]
LineNo = Annotated[int, Field(ge=0, le=10**9)]


@dataclass(frozen=True)
class WireLimits:
    """The job's limits, which what a child claims is checked against on arrival (``parse_message``)."""

    max_elements: int  # elements of an array sent as data; more are sent as too-large
    capture_bytes: int  # bytes of each stream a capture reads back
    file_bytes: int  # the file size limit: no capture can have grown larger


def _limits(info: ValidationInfo) -> WireLimits | None:
    return info.context if isinstance(info.context, WireLimits) else None


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
    frames: list[WireFrame] = Field(default_factory=list, max_length=MAX_FRAMES)
    lineno: LineNo | None = None
    offset: LineNo | None = None
    text: Text | None = None
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None


class WireCapture(_Message):
    text: Annotated[str, Field(max_length=MAX_CAPTURE)] = ""
    size: Count = 0
    truncated: bool = False

    @model_validator(mode="after")
    def _as_read(self, info: ValidationInfo) -> WireCapture:
        """The harness reads back at most ``capture_bytes`` (one character or more each) of a file that the
        file size limit bounds, and marks it truncated exactly when the file held more than it read."""
        limits = _limits(info)
        if limits is None:
            return self
        if len(self.text) > limits.capture_bytes:
            raise ValueError(f"a capture of {len(self.text)} characters exceeds the limit of {limits.capture_bytes}")
        if self.size > limits.file_bytes:
            raise ValueError(f"a capture of {self.size} bytes exceeds the file size limit of {limits.file_bytes}")
        if not self.truncated and self.size > limits.capture_bytes:
            raise ValueError(f"a capture of {self.size} bytes is not marked truncated")
        return self


class ArrayValue(_Message):
    kind: Literal["array"]
    type: Text
    dtype: Short
    wire_dtype: Short
    shape: list[Count] = Field(max_length=MAX_DIMS)
    data: str

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> ArrayValue:
        """On arrival: a plain dtype, no more elements than the job allows, and as much data as the shape
        says (checked on the base64 text's length, before anything is decoded)."""
        limits = _limits(info)
        if limits is None:
            return self
        if self.wire_dtype not in ALLOWED_DTYPES:
            raise ValueError(f"dtype {self.wire_dtype!r} is not allowed")
        count = math.prod(self.shape)
        if count > limits.max_elements:
            raise ValueError(f"{count} elements exceed the limit of {limits.max_elements}")
        size = count * np.dtype(self.wire_dtype).itemsize
        if len(self.data) != 4 * ((size + 2) // 3):
            raise ValueError(f"{len(self.data)} characters of data do not fit shape {self.shape} of {self.wire_dtype}")
        return self

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
    dtype: Short
    shape: list[Count] = Field(max_length=MAX_SHAPE)

    @model_validator(mode="after")
    def _too_large(self, info: ValidationInfo) -> TooLargeValue:
        """The harness says too-large only of an array with more elements or dimensions than it may send."""
        limits = _limits(info)
        if limits is not None and len(self.shape) <= MAX_DIMS and math.prod(self.shape) <= limits.max_elements:
            raise ValueError(f"shape {self.shape} is not too large to send")
        return self


class TreeValue(_Message):
    """A returned tuple, list or dict (string keys), its items wire values in turn: a tree of arrays."""

    kind: Literal["tree"]
    node: Literal["tuple", "list", "dict"]
    type: Text
    keys: list[Text] | None = Field(default=None, max_length=MAX_TREE_LEAVES)
    items: list[WireValue] = Field(max_length=MAX_TREE_LEAVES)
    repr: Text = ""
    summary: Text = ""

    @model_validator(mode="after")
    def _bounded(self) -> TreeValue:
        if (self.node == "dict") != (self.keys is not None) or (
            self.keys is not None and len(self.keys) != len(self.items)
        ):
            raise ValueError("a dict node needs one key per item, and only a dict node has keys")
        if self.keys is not None and len(set(self.keys)) != len(self.keys):
            raise ValueError("a dict node repeats a key")
        depth, leaves = _extent(self)
        if depth > MAX_TREE_DEPTH or leaves > MAX_TREE_LEAVES:
            raise ValueError(f"a tree {depth} deep with {leaves} leaves exceeds the limits")
        return self


def _extent(value: object) -> tuple[int, int]:
    """(depth, leaves) of a wire value: an array or other leaf is (0, 1)."""
    if not isinstance(value, TreeValue):
        return 0, 1
    extents = [_extent(item) for item in value.items]
    return 1 + max((d for d, _ in extents), default=0), sum(n for _, n in extents)


WireValue = Annotated[ArrayValue | ObjectValue | TooLargeValue | TreeValue, Field(discriminator="kind")]
TreeValue.model_rebuild()


class Hello(_Message):
    type: Literal["hello"]
    python: Short
    modules: dict[Short, Short] = Field(default_factory=dict, max_length=MAX_NAMES)
    backend: Short | None = None
    preload_error: WireError | None = None
    warmed: bool | None = None  # whether a warm-up ran through (None: there was none)


class Imported(_Message):
    type: Literal["imported"]
    error: WireError | None = None
    names: list[Text] = Field(default_factory=list, max_length=MAX_NAMES)
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


def parse_message(payload: bytes, *, limits: WireLimits | None = None) -> Hello | Imported | Result | Done:
    """One frame's message, validated; with ``limits`` (as the supervisor passes them), what it claims is
    checked against them too. Anything else is a ``ProtocolError``."""
    try:
        return _MESSAGE.validate_json(payload, context=limits)
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

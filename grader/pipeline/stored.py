"""A learner pack's stored outputs (``expected.json``): the expected outputs of its visible cases and of its
catalog's variants, computed by ``grader release`` and read by a grading in place of running a reference.

The file comes from wherever the learner got the pack, so it is read as untrusted in shape: bounded in
size, validated by a pydantic model, every array in the wire format (raw little-endian bytes of a plain
numeric dtype, with a shape the exercise's output limit bounds; never a pickle), and every tree as
bounded as a child's. Its outputs are used only for the cases they were computed for: the file carries
their fingerprint, which must equal that of the cases built from the pack's spec.
"""

from __future__ import annotations

import base64
import os
import platform
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.errors import SpecError
from grader.exercise.cases import Case, cases_fingerprint
from grader.exercise.pack import PRNG_SETTINGS, Stamp
from grader.exercise.spec import Exercise
from grader.pipeline.environment import package_version
from grader.pipeline.tree import Opaque, Tree, decode, leaves, path_text
from grader.sandbox.protocol import MAX_SHORT, ArrayValue, TreeValue, WireLimits, WireValue

STORED_FORMAT: Literal[1] = 1
MAX_STORED_BYTES = 256 * 1024 * 1024
MAX_STORED_OUTPUTS = 10_000  # of the cases, and as many again of the variants on them

CallId = Annotated[str, Field(max_length=MAX_SHORT)]


class StoredOutputs(BaseModel):
    """What ``expected.json`` holds: by call id (a case's, or ``variant::case``), each output as the wire
    carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    exercise: Annotated[str, Field(max_length=MAX_SHORT)]
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="cases_fingerprint of the cases")]
    stamp: Stamp
    outputs: dict[CallId, WireValue] = Field(max_length=MAX_STORED_OUTPUTS)
    variants: dict[CallId, WireValue] = Field(default_factory=dict, max_length=MAX_STORED_OUTPUTS)


def stamp_here(backend: str | None) -> Stamp:
    """The versions and PRNG settings this grader runs with; ``backend`` as a child reported it."""
    return Stamp(
        python=platform.python_version(),
        jax=package_version("jax"),
        jaxlib=package_version("jaxlib"),
        flax=package_version("flax"),
        numpy=package_version("numpy"),
        backend=backend,
        settings={name: os.environ[name] for name in PRNG_SETTINGS if name in os.environ},
    )


def wire_value(tree: Tree) -> ArrayValue | TreeValue:
    """An output as the wire carries it: the inverse of ``tree.decode`` for arrays and their containers."""
    if isinstance(tree, np.ndarray):
        little = np.ascontiguousarray(tree, dtype=tree.dtype.newbyteorder("<"))
        data = base64.b64encode(little.tobytes()).decode("ascii")
        shape = list(tree.shape)
        return ArrayValue(
            kind="array", type="ndarray", dtype=tree.dtype.name, wire_dtype=little.dtype.str, shape=shape, data=data
        )
    if isinstance(tree, dict):
        items: list[WireValue] = [wire_value(item) for item in tree.values()]
        return TreeValue(kind="tree", node="dict", type="dict", keys=list(tree), items=items)
    if isinstance(tree, (tuple, list)):
        node: Literal["tuple", "list"] = "tuple" if isinstance(tree, tuple) else "list"
        items = [wire_value(item) for item in tree]
        return TreeValue(kind="tree", node=node, type=node, items=items)
    raise ValueError(f"cannot store {type(tree).__name__}: only arrays and tuples, lists and dicts of them")


def load_stored(exercise: Exercise, cases: list[Case]) -> StoredOutputs:
    """The exercise's stored outputs, validated, for exactly ``cases``; ``SpecError`` (a fault of the
    exercise, never the learner's) for a file that is too large, malformed, of another exercise, or of
    other cases."""
    path = exercise.expected_path
    if path is None:
        raise SpecError(f"exercise {exercise.id!r} has no stored outputs")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STORED_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the stored outputs: {exc.strerror or exc}") from exc
    if len(data) > MAX_STORED_BYTES:
        raise SpecError(f"{path}: stored outputs over {MAX_STORED_BYTES} bytes are refused")
    limits = WireLimits(max_elements=exercise.spec.limits.max_output_elements, capture_bytes=0, file_bytes=0)
    try:
        stored = StoredOutputs.model_validate_json(data, context=limits)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(top level)"
        raise SpecError(f"{path}: not valid stored outputs: {where}: {first['msg']}") from None
    if stored.exercise != exercise.id:
        raise SpecError(f"{path}: the stored outputs are those of {stored.exercise!r}, not of {exercise.id!r}")
    found = cases_fingerprint(cases)
    if stored.fingerprint != found:
        raise SpecError(
            f"{path}: the stored outputs were computed for other cases (fingerprint {stored.fingerprint[:12]}) than "
            f"the spec's (fingerprint {found[:12]}): release the pack again"
        )
    return stored


def stored_trees(exercise: Exercise, values: dict[str, WireValue], call_ids: list[str], what: str) -> dict[str, Tree]:
    """The stored outputs of exactly ``call_ids``, decoded; every leaf must be an array. ``what`` names the
    part of the file (``outputs``, ``variants``) for the ``SpecError`` otherwise."""
    where = f"{exercise.expected_path}: {what}"
    missing, extra = sorted(set(call_ids) - set(values)), sorted(set(values) - set(call_ids))
    if missing or extra:
        raise SpecError(f"{where}: no output for {missing[:3]}, and outputs of no such call {extra[:3]}")
    trees = {}
    for call_id in call_ids:
        tree = decode(values[call_id], exercise.spec.limits.max_output_elements)
        bad = [path_text(path) for path, leaf in leaves(tree) if isinstance(leaf, Opaque)]
        if bad:
            raise SpecError(f"{where}: {call_id!r} holds something other than an array at {', '.join(bad[:3])}")
        trees[call_id] = tree
    return trees


def stored_outputs(
    exercise_id: str, cases: list[Case], outputs: dict[str, Tree], variants: dict[str, Tree], stamp: Stamp
) -> StoredOutputs:
    """The stored outputs of a pack: the reference's ``outputs`` on ``cases`` and the ``variants``' on them."""
    return StoredOutputs(
        format=STORED_FORMAT,
        exercise=exercise_id,
        fingerprint=cases_fingerprint(cases),
        stamp=stamp,
        outputs={call_id: wire_value(tree) for call_id, tree in outputs.items()},
        variants={call_id: wire_value(tree) for call_id, tree in variants.items()},
    )

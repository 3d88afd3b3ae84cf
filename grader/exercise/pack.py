"""A learner pack as data: an exercise without its answer, as ``grader release`` writes it.

A pack's folder holds what a learner needs to grade on their own machine (the prompt, the starter, the
hints, the visible cases, the catalog and its analysis) and, in place of the reference, the expected
outputs of the visible cases and of the catalog's variants (``expected.json``), stamped with the versions
they were computed with. This module runs nothing: it says what a pack's spec and catalog are (and writes
them as TOML), which lines of an exercise's code would give its answer away, and what a difference
between the stamp and the grader's own versions means for a grading.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.errors import SpecError
from grader.exercise.catalog import Catalog
from grader.exercise.spec import SPEC_FILE, ExerciseSpec

EXPECTED_FILE = "expected.json"
# Where a pack keeps each file its spec and catalog name, whatever the full exercise called them.
PROMPT_FILE, STARTER_FILE, WARMUP_FILE, CATALOG_FILE, ANALYSIS_FILE = (
    "prompt.md",
    "starter.py",
    "warmup.py",
    "mistakes.toml",
    "analysis.py",
)
PACK_FILES = frozenset({SPEC_FILE, EXPECTED_FILE, PROMPT_FILE, STARTER_FILE, WARMUP_FILE, CATALOG_FILE, ANALYSIS_FILE})
# The settings that choose JAX's random number generator: another value gives other random numbers.
PrngSetting = Literal["JAX_DEFAULT_PRNG_IMPL", "JAX_THREEFRY_PARTITIONABLE"]
PRNG_SETTINGS: tuple[PrngSetting, ...] = get_args(PrngSetting)
# A line of the reference shorter than this (``return x``, a decorator) says nothing of the answer.
MIN_SECRET_LINE = 21

Version = Annotated[str, Field(max_length=64)]


class Stamp(BaseModel):
    """The versions and settings a pack's expected outputs were computed with. Read from a pack, so bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    python: Version
    jax: Version | None = None
    jaxlib: Version | None = None
    flax: Version | None = None
    numpy: Version | None = None
    backend: Version | None = Field(default=None, description="Where the reference ran: cpu, gpu, tpu.")
    settings: dict[PrngSetting, Version] = Field(
        default_factory=dict, description="The PRNG settings in the environment (unset ones absent)."
    )


_COMPARED = ("jax", "jaxlib", "flax", "numpy", "python", "backend")


def _minor(version: str | None) -> tuple[str, ...]:
    return tuple((version or "").split(".")[:2])


def stamp_notes(made: Stamp, here: Stamp) -> list[str]:
    """What a grading's report says when it ran with other versions than a pack's outputs were computed
    with: plainly, which differ; and where the difference is known to change JAX's random numbers (jax's
    major or minor version, or a PRNG setting), that results may differ without any mistake of the
    learner's. ``here.backend`` None (not known) is not compared."""
    versions = [
        name
        for name in _COMPARED
        if getattr(made, name) != getattr(here, name) and not (name == "backend" and here.backend is None)
    ]
    settings = [name for name in PRNG_SETTINGS if made.settings.get(name) != here.settings.get(name)]
    if not versions and not settings:
        return []
    note = (
        f"The expected outputs of this learner pack were computed with {_listed(made, versions, settings)}; "
        f"this grading ran with {_listed(here, versions, settings)}."
    )
    if settings or _minor(made.jax) != _minor(here.jax):
        pins = [name for name in ("jax", "jaxlib") if getattr(made, name) != getattr(here, name)]
        note += (
            " JAX's random numbers can differ between these (its PRNG changed across jax versions, and these "
            "settings choose it), so results may differ from the expected ones without any mistake in your "
            f"code. To grade as the pack was made, use {_listed(made, pins, settings)}."
        )
    return [note]


def _listed(stamp: Stamp, versions: list[str], settings: list[PrngSetting]) -> str:
    parts = [f"{name} {getattr(stamp, name) or 'none'}" for name in versions]
    parts += [f"{name}={stamp.settings[name]}" if name in stamp.settings else f"{name} unset" for name in settings]
    return ", ".join(parts)


def secret_lines(code: Iterable[str], public: Iterable[str]) -> frozenset[str]:
    """The lines of ``code`` (the reference, the variants) that would give the answer away: stripped, at
    least ``MIN_SECRET_LINE`` characters, not an import or a comment, and not a line of the ``public``
    texts (the prompt and starter show the signature, say, by design)."""
    shown = {line.strip() for text in public for line in text.splitlines()}
    return frozenset(
        stripped
        for text in code
        for line in text.splitlines()
        if len(stripped := line.strip()) >= MIN_SECRET_LINE
        and not stripped.startswith(("import ", "from ", "#"))
        and stripped not in shown
    )


def leaked_lines(text: str, secrets: frozenset[str]) -> list[str]:
    """The lines of ``text`` that are secret lines, in order."""
    return [stripped for line in text.splitlines() if (stripped := line.strip()) in secrets]


def pack_spec(spec: ExerciseSpec, *, catalog: bool, warmup: bool) -> ExerciseSpec:
    """The spec of ``spec``'s learner pack: its visible cases, no generators, stored outputs in place of the
    reference, and the files it names at the pack's own names. ``SpecError`` when there is nothing to give
    a learner (every case hidden)."""
    data = spec.model_dump(exclude_none=True, exclude_defaults=True)
    for field in ("reference", "generators", "warmup", "mistakes"):
        data.pop(field, None)
    data["cases"] = [case for case in data["cases"] if not case.get("hidden")]
    data.update(expected=EXPECTED_FILE, prompt=PROMPT_FILE, starter=STARTER_FILE)
    if warmup:
        data["warmup"] = WARMUP_FILE
    if catalog:
        data["mistakes"] = CATALOG_FILE
    try:
        return ExerciseSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"exercise {spec.id!r} cannot be released: {_first_error(exc)}") from exc


def pack_catalog(catalog: Catalog) -> Catalog:
    """The catalog as a pack holds it: the same mistakes and the names of their variants (whose outputs the
    stored outputs hold), its analysis at the pack's own name."""
    return catalog.model_copy(update={"analysis": ANALYSIS_FILE if catalog.analysis else None})


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or '(top level)'}: {first['msg']}"


def spec_toml(spec: ExerciseSpec, *, comment: str = "") -> str:
    """``spec`` as the TOML of an ``exercise.toml``, checked to read back as the same spec."""
    data = spec.model_dump(exclude_none=True, exclude_defaults=True)
    return _checked(toml_text(data, comment=comment), spec, ExerciseSpec)


def catalog_toml(catalog: Catalog, *, comment: str = "") -> str:
    """``catalog`` as the TOML of a ``mistakes.toml``, checked to read back as the same catalog."""
    data = catalog.model_dump(exclude_none=True, exclude_defaults=True)
    return _checked(toml_text(data, comment=comment), catalog, Catalog)


def _checked(text: str, model: BaseModel, kind: type[BaseModel]) -> str:
    if kind.model_validate(tomllib.loads(text)) != model:
        raise SpecError(f"the {kind.__name__} written as TOML does not read back as itself (a fault of the grader)")
    return text


# --- TOML, written: the subset a spec and a catalog need ---------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
LINE = 100  # a list longer than this (written inline) is written an item a line, where TOML allows it


def toml_text(data: Mapping[str, object], *, comment: str = "") -> str:
    """``data`` (str keys; str, bool, int, float, lists and dicts of them) as TOML, after ``comment`` (as
    comment lines): plain values first, then a ``[table]`` per dict and a ``[[table]]`` per item of a list of
    dicts, their own values written inline."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += [f"{_key(k)} = {_value(v, 0)}" for k, v in data.items() if not _tables(k, v)]
    for key, value in data.items():
        for header, table in _tables(key, value):
            lines += ["", header, *(f"{_key(k)} = {_value(v, 0)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _tables(key: str, value: object) -> list[tuple[str, dict]]:
    """(header, table) for each table ``value`` makes: a dict one ``[key]``, a list of dicts a ``[[key]]`` per
    item; anything else none (it is written as a plain value)."""
    if isinstance(value, dict):
        return [(f"[{_key(key)}]", value)]
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [(f"[[{_key(key)}]]", item) for item in value]
    return []


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: object, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        inline = ", ".join(f"{_key(k)} = {_value(v, depth + 1)}" for k, v in value.items())
        return f"{{ {inline} }}" if inline else "{}"
    if isinstance(value, list):
        items = [_value(item, depth + 1) for item in value]
        if depth == 0 and sum(map(len, items)) > LINE:  # a long list (of tables, of hints): an item a line
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return f"[{', '.join(items)}]"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML")

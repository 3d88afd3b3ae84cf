"""Exercise specs: one folder per exercise, holding ``exercise.toml`` and its prompt.

Everything the engine knows about an exercise comes from here: the entry point and its parameters,
where the reference lives, the cases, the tolerance, the limits and the hints. A second exercise is a
new folder and a new reference file, never a change to the engine.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader.errors import SpecError, UsageError

SPEC_FILE = "exercise.toml"
EXERCISES_ENV = "GRADER_EXERCISES"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Spec):
    name: str
    type: Literal["float", "int", "bool", "array"]
    dtype: str | None = Field(default=None, description="For arrays: the numpy dtype name.")
    array_type: Literal["jax", "numpy"] = "numpy"
    description: str = ""

    @model_validator(mode="after")
    def _array_needs_dtype(self) -> Parameter:
        if self.type == "array" and not self.dtype:
            raise ValueError(f"array parameter {self.name!r} needs a dtype")
        if self.dtype is not None:
            try:
                kind = np.dtype(self.dtype).kind
            except TypeError:
                raise ValueError(f"dtype {self.dtype!r} of parameter {self.name!r} is not a numpy dtype") from None
            if kind not in "biufc":
                raise ValueError(f"dtype {self.dtype!r} of parameter {self.name!r} is not numeric")
        return self


class EntryPoint(_Spec):
    name: str
    parameters: list[Parameter]
    returns: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(p.name for p in self.parameters)})"


class ArrayFill(_Spec):
    """A generated array: a fill pattern, a shape, and for random fills a seed of its own."""

    fill: Literal["ones", "zeros", "full", "arange", "normal", "uniform"]
    shape: list[Annotated[int, Field(ge=0, le=1_000_000)]]
    value: float = Field(default=1.0, description="For 'full': the constant.")
    scale: float = Field(default=1.0, description="Multiplies the pattern.")
    offset: float = Field(default=0.0, description="Added after scaling.")
    seed: int = Field(default=0, description="For random fills: the numpy Generator seed.")


InputValue = float | int | bool | list[float] | ArrayFill


class CaseSpec(_Spec):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    title: str
    inputs: dict[str, InputValue]
    weight: Annotated[float, Field(gt=0)] = 1.0
    hidden: bool = False


class Expansion(_Spec):
    """Runs every case once per value of one parameter (for example in train and in eval mode)."""

    values: list[float | int | bool]
    labels: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]]

    @model_validator(mode="after")
    def _one_label_per_value(self) -> Expansion:
        if len(self.values) != len(self.labels) or not self.values:
            raise ValueError("expansion needs as many labels as values, and at least one")
        return self


class Mistake(_Spec):
    """A known mistake: how the grader recognises it, and what it tells the learner."""

    code: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")]
    title: str
    explanation: str = Field(description="The diagnosis message; {placeholders} come from the evidence.")
    hint: str
    points_at: list[Annotated[str, Field(pattern=r"^(call|keyword|def):[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, description="Constructs to show from the submission: call:NAME, keyword:NAME, def:NAME."
    )
    variants: list[str] = Field(
        default_factory=list, description="Functions in the variants file that make this mistake."
    )


class ExceptionHint(_Spec):
    """A known cause of an exception: when its pattern matches, the diagnosis says the fix."""

    match: str = Field(description="A regular expression searched in 'Type: message'.")
    hint: str
    points_at: list[Annotated[str, Field(pattern=r"^(call|keyword|def):[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _compiles(self) -> ExceptionHint:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"match {self.match!r} is not a regular expression: {exc}") from None
        return self


class Catalog(_Spec):
    """An exercise's catalog of known mistakes (``mistakes.toml``)."""

    analysis: str | None = Field(default=None, description="Python file with analyze(), relative to the catalog.")
    variants: str | None = Field(default=None, description="Python file with the variant functions.")
    mistake: list[Mistake] = Field(default_factory=list)
    exception: list[ExceptionHint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _codes_unique(self) -> Catalog:
        codes = [m.code for m in self.mistake]
        if len(codes) != len(set(codes)):
            raise ValueError(f"mistake codes are used twice: {sorted({c for c in codes if codes.count(c) > 1})}")
        if any(m.variants for m in self.mistake) and not self.variants:
            raise ValueError("mistakes name variants but no variants file is given")
        return self

    def by_code(self) -> dict[str, Mistake]:
        return {m.code: m for m in self.mistake}


class Tolerance(_Spec):
    rtol: Annotated[float, Field(ge=0)] = 1e-5
    atol: Annotated[float, Field(ge=0)] = 1e-6


class Limits(_Spec):
    import_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    case_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    memory_mb: Annotated[int, Field(ge=256)] = 4096
    capture_bytes: Annotated[int, Field(ge=256, le=65536)] = 8192
    max_output_elements: Annotated[int, Field(ge=1, le=2_000_000)] = 1_000_000


class ExerciseSpec(_Spec):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    title: str
    summary: str = ""
    prompt: str = Field(description="Markdown file with the exercise text, relative to the spec.")
    reference: str = Field(description="Python file with the reference solution, relative to the spec.")
    entry_point: EntryPoint
    preload: list[str] = Field(default_factory=list, description="Modules the child imports first.")
    tolerance: Tolerance = Tolerance()
    limits: Limits = Limits()
    expand: dict[str, Expansion] = Field(default_factory=dict)
    hints: list[str] = Field(default_factory=list, description="Hints for the learner, in the order to give them.")
    mistakes: str | None = Field(default=None, description="The catalog of known mistakes, relative to the spec.")
    starter: str | None = Field(default=None, description="The file `grader start` copies, relative to the spec.")
    warmup: str | None = Field(
        default=None, description="Python file with warm_up(calls), run by children started ahead (watch)."
    )
    feedback: dict[Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")], str] = Field(
        default_factory=dict, description="Hints by diagnosis code, in place of the engine's generic ones."
    )
    cases: list[CaseSpec]

    @model_validator(mode="after")
    def _cases_fit_entry_point(self) -> ExerciseSpec:
        params = [p.name for p in self.entry_point.parameters]
        unknown = set(self.expand) - set(params)
        if unknown:
            raise ValueError(f"expand names unknown parameters: {sorted(unknown)}")
        wanted = set(params) - set(self.expand)
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} is used twice")
            seen.add(case.id)
            if set(case.inputs) != wanted:
                raise ValueError(
                    f"case {case.id!r} gives inputs {sorted(case.inputs)}, expected exactly {sorted(wanted)}"
                )
            for param in self.entry_point.parameters:
                if (
                    param.name in case.inputs
                    and param.type != "array"
                    and isinstance(case.inputs[param.name], (list, ArrayFill))
                ):
                    raise ValueError(f"case {case.id!r}: {param.name!r} is a {param.type}, not an array")
        if not self.cases:
            raise ValueError("an exercise needs at least one case")
        return self


class Exercise(BaseModel):
    """A loaded spec, its catalog of mistakes, and the folder they came from."""

    model_config = ConfigDict(frozen=True)

    spec: ExerciseSpec
    folder: Path
    catalog: Catalog = Catalog()
    catalog_folder: Path | None = None

    def catalog_file(self, name: str | None) -> Path | None:
        """A file the catalog names (its analysis or variants), resolved next to the catalog."""
        if name is None or self.catalog_folder is None:
            return None
        return (self.catalog_folder / name).resolve()

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def reference_path(self) -> Path:
        return (self.folder / self.spec.reference).resolve()

    @property
    def prompt_path(self) -> Path:
        return (self.folder / self.spec.prompt).resolve()

    def starter_text(self) -> str:
        """The starter file for a learner: the exercise's own, or one made from the entry point."""
        if self.spec.starter:
            path = (self.folder / self.spec.starter).resolve()
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SpecError(f"{self.folder / SPEC_FILE}: starter: cannot read {path}: {exc}") from exc
        entry = self.spec.entry_point
        lines = [f'"""{self.spec.title}: run `grader show {self.id}` for the exercise."""', "", ""]
        lines.append(f"def {entry.signature}:")
        lines.append(f'    """Returns {entry.returns or "the result"}.')
        lines.append("")
        lines += [f"    {p.name}: {p.description or p.type}" for p in entry.parameters]
        lines += ['    """', f'    raise NotImplementedError("write {entry.name}")', ""]
        return "\n".join(lines)

    def prompt_text(self) -> str:
        try:
            return self.prompt_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{self.folder / SPEC_FILE}: prompt: cannot read {self.prompt_path}: {exc}") from exc


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid exercise spec"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_exercise(folder: Path) -> Exercise:
    """Reads and validates one exercise folder; a malformed spec raises ``SpecError`` naming file and field."""
    path = folder / SPEC_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    try:
        spec = ExerciseSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(path, exc)) from exc
    if spec.id != folder.name:
        raise SpecError(f"{path}: id: {spec.id!r} differs from its folder name {folder.name!r}")
    exercise = Exercise(spec=spec, folder=folder.resolve())
    for field, target in (("prompt", exercise.prompt_path), ("reference", exercise.reference_path)):
        if not target.is_file():
            raise SpecError(f"{path}: {field}: file not found: {target}")
    exercise.prompt_text()
    if spec.mistakes is not None:
        exercise = _with_catalog(exercise, (folder / spec.mistakes).resolve(), path)
    return exercise


def _with_catalog(exercise: Exercise, path: Path, spec_path: Path) -> Exercise:
    if not path.is_file():
        raise SpecError(f"{spec_path}: mistakes: file not found: {path}")
    try:
        catalog = Catalog.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the catalog: {exc}") from exc
    except ValidationError as exc:
        raise SpecError(
            _format_validation_error(path, exc).replace("invalid exercise spec", "invalid catalog")
        ) from exc
    loaded = exercise.model_copy(update={"catalog": catalog, "catalog_folder": path.parent})
    for field in ("analysis", "variants"):
        target = loaded.catalog_file(getattr(catalog, field))
        if target is not None and not target.is_file():
            raise SpecError(f"{path}: {field}: file not found: {target}")
    return loaded


def exercise_roots() -> list[Path]:
    """Folders that hold exercises: ``$GRADER_EXERCISES`` (os.pathsep-separated), else the bundled ones:
    a source checkout's ``exercises/``, or the copy a wheel installs under ``<prefix>/share/jax-grader``."""
    configured = os.environ.get(EXERCISES_ENV)
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    checkout = Path(__file__).resolve().parent.parent / "exercises"
    installed = Path(sys.prefix) / "share" / "jax-grader" / "exercises"
    for candidate in (checkout, installed):
        if candidate.is_dir():
            return [candidate]
    return []


def discover_exercises(roots: list[Path] | None = None) -> dict[str, Exercise]:
    """Every exercise under the roots, by id. A malformed spec is an error, not a silent omission."""
    found: dict[str, Exercise] = {}
    for root in exercise_roots() if roots is None else roots:
        if not root.is_dir():
            raise UsageError(f"exercise folder not found: {root} (from ${EXERCISES_ENV} or the installation)")
        for folder in sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file()):
            exercise = load_exercise(folder)
            if exercise.id in found:
                raise SpecError(f"{folder}: exercise id {exercise.id!r} is defined twice")
            found[exercise.id] = exercise
    return found


def get_exercise(exercise_id: str, roots: list[Path] | None = None) -> Exercise:
    exercises = discover_exercises(roots)
    if exercise_id not in exercises:
        known = ", ".join(sorted(exercises)) or "none"
        raise UsageError(f"unknown exercise {exercise_id!r} (known: {known})")
    return exercises[exercise_id]

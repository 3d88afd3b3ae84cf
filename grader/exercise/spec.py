"""Exercise specs: one folder per exercise, holding ``exercise.toml`` and its prompt.

Everything the engine knows about an exercise comes from here: the entry point and its parameters,
where the reference lives, the cases, the tolerance, the limits and the hints. A second exercise is a
new folder and a new reference file, never a change to the engine.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationError,
    model_validator,
)

from grader.errors import SpecError, UsageError
from grader.exercise.catalog import Catalog, SpecModel
from grader.exercise.roots import EXERCISES_ENV, SPEC_FILE, exercise_roots

MAX_SEED = 2**63 - 1  # seeds of fresh cases (--seed N), and the array seeds drawn for them
CASE_ID = r"^[a-z0-9][a-z0-9._-]*$"


class Parameter(SpecModel):
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


_LEAF_PATH = r'^(\[(\d+|"[A-Za-z0-9_.-]+")\])*$'
_SHAPE_RULE = re.compile(r"^\s*(as\s+(?P<as>[A-Za-z_]\w*)|\((?P<dims>[^()]*)\))\s*$")
_DIM = re.compile(r"^\s*(?:(?P<int>\d+)|(?P<name>[A-Za-z_]\w*)\[(?P<axis>-?\d+)\])\s*$")


class ReturnLeaf(SpecModel):
    """One array of what the entry point returns: where it lies, its dtype, its shape, its own tolerance."""

    path: Annotated[str, Field(pattern=_LEAF_PATH)] = Field(
        default="", description='Where the leaf lies: "" for a single array, [0], [1]["mean"], ...'
    )
    dtype: str | None = Field(default=None, description="The numpy dtype name the reference returns.")
    shape: str | None = Field(
        default=None, description='A shape rule: "as x" (the shape of parameter x), "(x[0], x[-1])", "(3,)", "()".'
    )
    rtol: Annotated[float, Field(ge=0)] | None = None
    atol: Annotated[float, Field(ge=0)] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _rule_parses(self) -> ReturnLeaf:
        if self.shape is not None:
            match = _SHAPE_RULE.match(self.shape)
            dims = [] if match is None or match["dims"] is None else [d for d in match["dims"].split(",") if d.strip()]
            if match is None or any(_DIM.match(d) is None for d in dims):
                raise ValueError(f"shape {self.shape!r}: write 'as NAME', or a tuple of sizes and NAME[axis]")
        return self

    def names(self) -> set[str]:
        """The parameters the shape rule reads."""
        if self.shape is None:
            return set()
        match = _SHAPE_RULE.match(self.shape)
        assert match is not None
        if match["as"]:
            return {match["as"]}
        return {m["name"] for d in match["dims"].split(",") if d.strip() and (m := _DIM.match(d)) and m["name"]}

    def expected_shape(self, args: dict[str, object]) -> tuple[int, ...] | None:
        """The shape the rule gives for a call's arguments (None without a rule)."""
        if self.shape is None:
            return None
        match = _SHAPE_RULE.match(self.shape)
        assert match is not None
        if match["as"]:
            return tuple(np.asarray(args[match["as"]]).shape)
        dims = []
        for text in (d for d in match["dims"].split(",") if d.strip()):
            dim = _DIM.match(text)
            assert dim is not None
            dims.append(int(dim["int"]) if dim["int"] else int(np.asarray(args[dim["name"]]).shape[int(dim["axis"])]))
        return tuple(dims)


class Returns(SpecModel):
    """What the entry point returns, as a structure: one array (a leaf at path ""), or a tree of them."""

    description: str = ""
    leaves: list[ReturnLeaf] = Field(default_factory=list)

    @model_validator(mode="after")
    def _paths_unique(self) -> Returns:
        paths = [leaf.path for leaf in self.leaves]
        if len(paths) != len(set(paths)):
            raise ValueError(f"returns.leaves: a path is given twice: {paths}")
        if "" in paths and len(paths) > 1:
            raise ValueError('returns.leaves: path "" (one array) excludes any other leaf')
        return self

    def tolerances(self, default: Tolerance) -> dict[str, tuple[float, float]]:
        """Per leaf path (as reports write it), the tolerance where a leaf sets its own."""
        return {
            _report_path(leaf.path): (
                default.rtol if leaf.rtol is None else leaf.rtol,
                default.atol if leaf.atol is None else leaf.atol,
            )
            for leaf in self.leaves
            if leaf.rtol is not None or leaf.atol is not None
        }


def _report_path(path: str) -> str:
    return path or "output"


class EntryPoint(SpecModel):
    name: str
    parameters: list[Parameter]
    returns: str | Returns = Field(default="", description="In words, or as a structure of leaves.")

    @property
    def returns_text(self) -> str:
        return self.returns if isinstance(self.returns, str) else self.returns.description

    @model_validator(mode="after")
    def _rules_name_parameters(self) -> EntryPoint:
        if isinstance(self.returns, Returns):
            arrays = {p.name for p in self.parameters if p.type == "array"}
            for leaf in self.returns.leaves:
                unknown = leaf.names() - arrays
                if unknown:
                    raise ValueError(f"returns: leaf {leaf.path!r}: shape names {sorted(unknown)}: no such array")
        return self

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(p.name for p in self.parameters)})"


FillName = Literal["ones", "zeros", "full", "arange", "normal", "uniform"]


class ArrayFill(SpecModel):
    """A generated array: a fill pattern, a shape, and for random fills a seed of its own."""

    fill: FillName
    shape: list[Annotated[int, Field(ge=0, le=1_000_000)]]
    value: float = Field(default=1.0, description="For 'full': the constant.")
    scale: float = Field(default=1.0, description="Multiplies the pattern.")
    offset: float = Field(default=0.0, description="Added after scaling.")
    seed: int = Field(default=0, description="For random fills: the numpy Generator seed.")


# A literal array: a list of numbers, or nested lists for 2-D and 3-D (rectangular, checked at load).
LiteralArray = list[float] | list[list[float]] | list[list[list[float]]]
InputValue = float | int | bool | LiteralArray | ArrayFill


class CaseSpec(SpecModel):
    id: Annotated[str, Field(pattern=CASE_ID)]
    title: str
    inputs: dict[str, InputValue]
    weight: Annotated[float, Field(gt=0)] = 1.0
    hidden: bool = False


def _form(value: object) -> str:
    """How a recipe is written: the tag that picks its model, so that an error names the form meant."""
    if isinstance(value, BaseModel):
        return getattr(value, "FORM", "literal")
    if isinstance(value, dict):
        return next((key for key in ("between", "one_of") if key in value), "array")
    return "list" if isinstance(value, list) else "literal"


def _rectangular(value: list) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
    except ValueError:
        return False
    return True


class Between(SpecModel):
    """A number drawn for each fresh case from ``[lo, hi]``: a whole number (both bounds included) when
    both bounds are integers, else a uniform float."""

    FORM: ClassVar[str] = "between"
    between: Annotated[list[StrictInt | StrictFloat], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _ordered(self) -> Between:
        lo, hi = self.between
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"between [{lo}, {hi}]: the bounds must be finite")
        if lo > hi:
            raise ValueError(f"between [{lo}, {hi}]: the lower bound is above the upper one")
        return self

    @property
    def whole(self) -> bool:
        return all(isinstance(bound, int) for bound in self.between)

    def draw(self, rng: np.random.Generator) -> int | float:
        lo, hi = self.between
        if isinstance(lo, int) and isinstance(hi, int):  # whole: both bounds included
            return int(rng.integers(lo, hi, endpoint=True))
        return float(rng.uniform(lo, hi))


class OneOf(SpecModel):
    """A value chosen for each fresh case from a list."""

    FORM: ClassVar[str] = "one_of"
    one_of: Annotated[list[StrictBool | StrictInt | StrictFloat], Field(min_length=1)]

    def draw(self, rng: np.random.Generator) -> bool | int | float:
        return self.one_of[int(rng.integers(len(self.one_of)))]


DrawnNumber = Annotated[
    Annotated[float, Tag("literal")] | Annotated[Between, Tag("between")] | Annotated[OneOf, Tag("one_of")],
    Discriminator(
        _form,
        custom_error_type="number_recipe",
        custom_error_message="expected a number, { between = [lo, hi] } or { one_of = [...] }",
    ),
]
Dimension = Annotated[
    Annotated[Annotated[int, Field(ge=0, le=1_000_000)], Tag("literal")] | Annotated[Between, Tag("between")],
    Discriminator(
        _form, custom_error_type="size_recipe", custom_error_message="expected a size or { between = [lo, hi] }"
    ),
]


def _drawn(value: float | Between | OneOf, rng: np.random.Generator) -> float:
    return float(value.draw(rng) if isinstance(value, (Between, OneOf)) else value)


class ArrayGenerator(SpecModel):
    """In a generator: an array recipe like ``ArrayFill``, any part of which may be drawn for each case."""

    FORM: ClassVar[str] = "array"
    fill: Annotated[
        Annotated[FillName, Tag("one")] | Annotated[list[FillName], Field(min_length=1), Tag("list")],
        Discriminator(lambda value: "list" if isinstance(value, list) else "one"),
    ] = Field(description="A fill pattern, or a list of them to choose from.")
    shape: list[Dimension]
    value: DrawnNumber = Field(default=1.0, description="For 'full': the constant.")
    scale: DrawnNumber = Field(default=1.0, description="Multiplies the pattern.")
    offset: DrawnNumber = Field(default=0.0, description="Added after scaling.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = Field(
        default=None, description="A fixed seed for random fills; by default each fresh case draws its own."
    )

    @model_validator(mode="after")
    def _whole_sizes(self) -> ArrayGenerator:
        for axis, size in enumerate(self.shape):
            if isinstance(size, Between) and not (size.whole and 0 <= size.between[0] <= size.between[1] <= 1_000_000):
                raise ValueError(f"shape[{axis}]: between {size.between} must hold whole numbers from 0 to 1000000")
        for name in ("value", "scale", "offset"):
            drawn = getattr(self, name)
            if isinstance(drawn, OneOf) and any(isinstance(v, bool) for v in drawn.one_of):
                raise ValueError(f"{name}: one_of {drawn.one_of} holds a bool, not a number")
        return self

    def max_elements(self) -> int:
        """The most elements any drawn shape can hold."""
        return math.prod(size if isinstance(size, int) else int(size.between[1]) for size in self.shape)

    def draw(self, rng: np.random.Generator) -> ArrayFill:
        """A concrete fill recipe, with an array seed of its own drawn from ``rng``."""
        fill = self.fill if isinstance(self.fill, str) else self.fill[int(rng.integers(len(self.fill)))]
        shape = [size if isinstance(size, int) else int(size.draw(rng)) for size in self.shape]
        value, scale, offset = (_drawn(number, rng) for number in (self.value, self.scale, self.offset))
        seed = int(rng.integers(MAX_SEED)) if self.seed is None else self.seed
        return ArrayFill(fill=fill, shape=shape, seed=seed, value=value, scale=scale, offset=offset)


Recipe = Annotated[
    Annotated[float | int | bool, Tag("literal")]
    | Annotated[LiteralArray, Tag("list")]
    | Annotated[Between, Tag("between")]
    | Annotated[OneOf, Tag("one_of")]
    | Annotated[ArrayGenerator, Tag("array")],
    Discriminator(_form),
]


class Generator(SpecModel):
    """Fresh cases for a seed (``grader grade --seed N``): ``count`` cases, each input drawn from its recipe.

    A case's inputs depend only on the seed, the generator's position in the spec, the case's index and the
    parameter's position: the same seed always gives the same cases (with the same numpy, on any machine).
    """

    id: Annotated[str, Field(pattern=CASE_ID)]
    title: str
    count: Annotated[int, Field(ge=1, le=100)]
    weight: Annotated[float, Field(gt=0)] = 1.0
    hidden: bool = False
    inputs: dict[str, Recipe] = Field(description="A recipe for every parameter that is not expanded.")

    def case_ids(self) -> list[str]:
        return [f"{self.id}-{k}" for k in range(1, self.count + 1)]

    def make_case(self, seed: int, position: int, index: int, params: list[Parameter]) -> CaseSpec:
        """The ``index``-th (0-based) case for ``seed``, as concrete as a fixed case: literals and fills."""
        inputs = {
            param.name: _concrete(self.inputs[param.name], param, np.random.default_rng([seed, position, index, at]))
            for at, param in enumerate(params)
            if param.name in self.inputs
        }
        return CaseSpec(
            id=self.case_ids()[index],
            title=f"{self.title} (fresh case {index + 1} of {self.count}, seed {seed})",
            inputs=inputs,
            weight=self.weight,
            hidden=self.hidden,
        )


def _concrete(recipe: Recipe, param: Parameter, rng: np.random.Generator) -> InputValue:
    if isinstance(recipe, ArrayGenerator):
        return recipe.draw(rng)
    value = recipe.draw(rng) if isinstance(recipe, (Between, OneOf)) else recipe
    if param.type == "array" or isinstance(value, (list, ArrayFill)):
        return value
    return {"float": float, "int": int, "bool": bool}[param.type](value)


def _recipe_problem(recipe: object, param: Parameter) -> str | None:
    """Why a recipe cannot make values of the parameter's type, or None when it can."""
    if param.type == "array":
        if isinstance(recipe, (Between, OneOf)):
            return "is an array: give a list, or a table with fill and shape"
        return None
    if isinstance(recipe, (list, ArrayGenerator)):
        return f"is {_a(param.type)}, not an array"
    if isinstance(recipe, Between):
        if param.type == "bool":
            return "is a bool: draw it with one_of, not between"
        if param.type == "int" and not recipe.whole:
            return f"is an int: between {recipe.between} needs whole-number bounds"
    if isinstance(recipe, OneOf):
        wrong = [value for value in recipe.one_of if not _fits(value, param.type)]
        if wrong:
            return f"is {_a(param.type)}: one_of holds {wrong[0]!r}"
    return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _fits(value: bool | int | float, kind: str) -> bool:
    if kind == "bool" or isinstance(value, bool):
        return kind == "bool" and isinstance(value, bool)
    return isinstance(value, int) if kind == "int" else True


def _one_line(error: ValueError | ArithmeticError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors())
    return str(error)


class Expansion(SpecModel):
    """Runs every case once per value of one parameter (for example in train and in eval mode)."""

    values: list[float | int | bool]
    labels: list[Annotated[str, Field(pattern=CASE_ID)]]

    @model_validator(mode="after")
    def _one_label_per_value(self) -> Expansion:
        if len(self.values) != len(self.labels) or not self.values:
            raise ValueError("expansion needs as many labels as values, and at least one")
        return self


class Tolerance(SpecModel):
    rtol: Annotated[float, Field(ge=0)] = 1e-5
    atol: Annotated[float, Field(ge=0)] = 1e-6


class Limits(SpecModel):
    import_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    case_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    memory_mb: Annotated[int, Field(ge=256)] = 4096
    capture_bytes: Annotated[int, Field(ge=256, le=65536)] = 8192
    max_output_elements: Annotated[int, Field(ge=1, le=2_000_000)] = 1_000_000


class ExerciseSpec(SpecModel):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    title: str
    summary: str = ""
    prompt: str = Field(description="Markdown file with the exercise text, relative to the spec.")
    reference: str | None = Field(
        default=None, description="Python file with the reference solution, relative to the spec."
    )
    expected: str | None = Field(
        default=None,
        description="JSON file of stored expected outputs, in place of reference: a learner pack's (grader release).",
    )
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
    generators: list[Generator] = Field(
        default_factory=list, description="Recipes for fresh cases, made only for a seed (grader grade --seed N)."
    )

    @model_validator(mode="after")
    def _one_source_of_expected_outputs(self) -> ExerciseSpec:
        """The reference, or a learner pack's stored outputs: never both. Stored outputs hold the fixed
        cases only, and a learner holds them: no generator can add fresh cases, no case can be hidden."""
        if (self.reference is None) == (self.expected is None):
            raise ValueError("give exactly one of reference (a solution) and expected (stored outputs)")
        if self.expected is not None:
            if self.generators:
                raise ValueError("expected: stored outputs cover the fixed cases only; a generator needs reference")
            hidden = [case.id for case in self.cases if case.hidden]
            if hidden:
                raise ValueError(f"expected: the learner holds the stored outputs, so no case is hidden: {hidden}")
        return self

    def leaf_tolerances(self) -> dict[str, tuple[float, float]]:
        """Per leaf path (as reports write it), the tolerance of each leaf that sets its own; empty for a
        single array or a return described in words."""
        returns = self.entry_point.returns
        return returns.tolerances(self.tolerance) if isinstance(returns, Returns) else {}

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
                value = case.inputs.get(param.name)
                if param.type != "array" and isinstance(value, (list, ArrayFill)):
                    raise ValueError(f"case {case.id!r}: {param.name!r} is a {param.type}, not an array")
                if isinstance(value, list) and not _rectangular(value):
                    raise ValueError(f"case {case.id!r}: {param.name!r}: nested lists of unequal lengths")
        if not self.cases:
            raise ValueError("an exercise needs at least one case")
        return self

    @model_validator(mode="after")
    def _generators_fit_entry_point(self) -> ExerciseSpec:
        """Each generator gives a recipe of the right kind for every parameter, makes ids of its own, and
        makes its cases: tried once here, with seed 0, so that a broken recipe fails at load, not in a grading."""
        params = self.entry_point.parameters
        wanted = {p.name for p in params} - set(self.expand)
        taken = {case.id for case in self.cases}
        for position, generator in enumerate(self.generators):
            if set(generator.inputs) != wanted:
                raise ValueError(
                    f"generator {generator.id!r} gives recipes for {sorted(generator.inputs)}, "
                    f"expected exactly {sorted(wanted)}"
                )
            for param in (p for p in params if p.name in wanted):
                recipe = generator.inputs[param.name]
                problem = _recipe_problem(recipe, param)
                if problem:
                    raise ValueError(f"generator {generator.id!r}: {param.name!r} {problem}")
                limit = self.limits.max_output_elements
                if isinstance(recipe, ArrayGenerator) and recipe.max_elements() > limit:
                    raise ValueError(
                        f"generator {generator.id!r}: {param.name!r} can draw {recipe.max_elements()} elements, "
                        f"more than limits.max_output_elements ({limit}) for some seed"
                    )
            clash = sorted(taken & set(generator.case_ids()))
            if clash:
                raise ValueError(f"generator {generator.id!r} makes case ids that are used already: {clash[:3]}")
            taken |= set(generator.case_ids())
            for index in range(generator.count):
                try:
                    generator.make_case(0, position, index, params)
                except (ValueError, ArithmeticError) as exc:
                    raise ValueError(
                        f"generator {generator.id!r} cannot make its case {index + 1} (seed 0): {_one_line(exc)}"
                    ) from None
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
        """Where the expected outputs come from: the reference solution, or a learner pack's stored outputs."""
        return (self.folder / (self.spec.reference or self.spec.expected or "")).resolve()

    @property
    def expected_path(self) -> Path | None:
        """A learner pack's stored outputs, read in place of running a reference (None: a full exercise)."""
        return None if self.spec.expected is None else (self.folder / self.spec.expected).resolve()

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
        lines.append(f'    """Returns {entry.returns_text or "the result"}.')
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
    source = "reference" if spec.reference is not None else "expected"
    for field, target in (("prompt", exercise.prompt_path), (source, exercise.reference_path)):
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
    # A learner pack's stored outputs hold its variants' outputs: the catalog names them, the pack has no file.
    for field in ("analysis",) if exercise.spec.expected is not None else ("analysis", "variants"):
        target = loaded.catalog_file(getattr(catalog, field))
        if target is not None and not target.is_file():
            raise SpecError(f"{path}: {field}: file not found: {target}")
    return loaded


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

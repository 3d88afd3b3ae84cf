"""Concrete, seeded cases built from an exercise spec: the exact arguments every run receives."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from grader.errors import UsageError
from grader.exercise.spec import MAX_SEED, ArrayFill, CaseSpec, Exercise, ExerciseSpec, InputValue, Parameter


@dataclass(frozen=True)
class Case:
    """One call of the entry point: its arguments in order, and how it counts."""

    id: str
    title: str
    args: tuple[object, ...]
    params: tuple[Parameter, ...]
    weight: float
    hidden: bool
    group: str = ""  # the id of the spec's case this one was expanded from
    labels: tuple[tuple[str, str], ...] = ()  # (expanded parameter, label), e.g. (("train", "eval"),)
    fresh: bool = False  # made by one of the exercise's generators, for the grading's seed

    def inputs_brief(self) -> dict[str, str]:
        return {p.name: describe_value(v) for p, v in zip(self.params, self.args, strict=True)}


def _fill_array(fill: ArrayFill, dtype: str) -> np.ndarray:
    shape = tuple(fill.shape)
    rng = np.random.default_rng(fill.seed)
    pattern = {
        "ones": lambda: np.ones(shape),
        "zeros": lambda: np.zeros(shape),
        "full": lambda: np.full(shape, fill.value),
        "arange": lambda: np.arange(int(np.prod(shape))).reshape(shape),
        "normal": lambda: rng.standard_normal(shape),
        "uniform": lambda: rng.uniform(0.0, 1.0, shape),
    }[fill.fill]()
    return (pattern * fill.scale + fill.offset).astype(dtype)


def make_value(raw: InputValue, param: Parameter) -> object:
    """Turns a spec's input (a literal or a fill recipe) into the value the parameter's type asks for."""
    if param.type == "array":
        assert param.dtype is not None  # the spec model requires it
        if isinstance(raw, ArrayFill):
            return _fill_array(raw, param.dtype)
        return np.atleast_1d(np.asarray(raw, dtype=param.dtype))
    if isinstance(raw, (list, ArrayFill)):
        raise ValueError(f"parameter {param.name!r} is a {param.type}, not an array")
    return {"float": float, "int": int, "bool": bool}[param.type](raw)


def build_cases(exercise: Exercise, seed: int | None = None) -> list[Case]:
    """Every case of the exercise in spec order, then, for a seed, the fresh cases its generators make
    (the same seed, the same cases); each expanded over the spec's ``expand`` parameters."""
    spec = exercise.spec
    params = tuple(spec.entry_point.parameters)
    fixed = [case for case_spec in spec.cases for case in _expanded(case_spec, spec, params)]
    if seed is None:
        return fixed
    fresh = fresh_cases(exercise, seed)
    return fixed + [case for case_spec in fresh for case in _expanded(case_spec, spec, params, fresh=True)]


def fresh_cases(exercise: Exercise, seed: int) -> list[CaseSpec]:
    """The cases the exercise's generators make for ``seed``, before expansion: ``<generator>-1``, ..."""
    seed = checked_seed(seed)
    params = list(exercise.spec.entry_point.parameters)
    return [
        generator.make_case(seed, position, index, params)
        for position, generator in enumerate(exercise.spec.generators)
        for index in range(generator.count)
    ]


def checked_seed(seed: object) -> int:
    """The seed as an int, or a ``UsageError`` saying what a seed may be."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"a seed is a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return int(seed)


def _expanded(
    case_spec: CaseSpec, spec: ExerciseSpec, params: tuple[Parameter, ...], *, fresh: bool = False
) -> list[Case]:
    variants: list[tuple[tuple[tuple[str, str], ...], dict[str, InputValue]]] = [((), dict(case_spec.inputs))]
    for name, expansion in spec.expand.items():
        variants = [
            ((*labels, (name, label)), {**inputs, name: value})
            for labels, inputs in variants
            for value, label in zip(expansion.values, expansion.labels, strict=True)
        ]
    return [
        Case(
            id="/".join([case_spec.id, *(label for _, label in labels)]),
            group=case_spec.id,
            labels=labels,
            title=case_spec.title,
            args=tuple(make_value(inputs[p.name], p) for p in params),
            params=params,
            weight=case_spec.weight,
            hidden=case_spec.hidden,
            fresh=fresh,
        )
        for labels, inputs in variants
    ]


def describe_value(value: object) -> str:
    """A short, human description of an argument: ``0.0``, ``f32[4] ones``, ``f32[64] ~N(0, 1.0e+04)``."""
    if not isinstance(value, np.ndarray):
        return repr(value)
    short = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}
    head = f"{short.get(value.dtype.name, value.dtype.name)}[{','.join(map(str, value.shape))}]"
    if value.size == 0:
        return head
    if value.size <= 4:
        return f"{head} [{', '.join(f'{v:.3g}' for v in value.reshape(-1).tolist())}]"
    if np.all(value == value.flat[0]):
        return f"{head} all {value.flat[0]:g}"
    return f"{head} in [{value.min():.3g}, {value.max():.3g}]"


def cases_fingerprint(cases: list[Case]) -> str:
    """A digest of every argument of every case, for keying cached reference outputs."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(case.id.encode())
        for value in case.args:
            if isinstance(value, np.ndarray):
                digest.update(f"{value.dtype.str}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr((type(value).__name__, value)).encode())
    return digest.hexdigest()

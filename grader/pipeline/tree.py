"""Values as trees: an output is an array, or tuples, lists and dicts (string keys) of arrays, nested.

Pure functions over decoded values: paths to every leaf (``[1]["mean"]``), a description in words
("a tuple of 2: (array, dict with keys mean, var)"), and how one structure differs from another. A leaf
the submission returned that is not an array (a string, None, an array too large to send) is an
``Opaque`` leaf: it keeps what the wire said of it, for the comparison to name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from grader.sandbox.protocol import ArrayValue, ObjectValue, TooLargeValue, TreeValue

Key = int | str
Path = tuple[Key, ...]


@dataclass(frozen=True)
class Opaque:
    """A leaf that is not a usable array: what came back instead, as the wire described it."""

    value: ObjectValue | TooLargeValue | ArrayValue
    problem: str = ""  # for an array that could not be rebuilt


Tree = Union[np.ndarray, Opaque, tuple["Tree", ...], list["Tree"], dict[str, "Tree"]]  # noqa: UP007


def decode(value: ArrayValue | ObjectValue | TooLargeValue | TreeValue, max_elements: int) -> Tree:
    """The value a wire message carries: arrays rebuilt, containers as Python containers."""
    if isinstance(value, TreeValue):
        items = [decode(item, max_elements) for item in value.items]
        if value.node == "dict":
            return dict(zip(value.keys or [], items, strict=True))
        return items if value.node == "list" else tuple(items)
    if isinstance(value, ArrayValue):
        try:
            return value.to_numpy(max_elements)
        except ValueError as exc:
            return Opaque(value, f"the returned array is unusable: {exc}")
    return Opaque(value)


def is_container(tree: object) -> bool:
    return isinstance(tree, (tuple, list, dict))


def leaves(tree: Tree, path: Path = ()) -> list[tuple[Path, np.ndarray | Opaque]]:
    """Every leaf with its path, in order (dict keys in their order)."""
    if isinstance(tree, dict):
        return [pair for key, child in tree.items() for pair in leaves(child, (*path, key))]
    if isinstance(tree, (tuple, list)):
        return [pair for index, child in enumerate(tree) for pair in leaves(child, (*path, index))]
    return [(path, tree)]


def path_text(path: Path) -> str:
    """``[1]["mean"]``; the whole output is ``output``."""
    if not path:
        return "output"
    return "".join(f"[{key}]" if isinstance(key, int) else f'["{key}"]' for key in path)


def describe(tree: object, *, depth: int = 2) -> str:
    """In words: "an array", "a tuple of 2: (array, dict with keys mean, var)"."""
    if isinstance(tree, dict):
        keys = ", ".join(str(k) for k in list(tree)[:6]) + (", …" if len(tree) > 6 else "")
        return f"a dict with keys {keys}" if tree else "an empty dict"
    if isinstance(tree, (tuple, list)):
        kind = "tuple" if isinstance(tree, tuple) else "list"
        if depth <= 0 or not tree:
            return f"a {kind} of {len(tree)}"
        inner = ", ".join(_bare(describe(item, depth=depth - 1)) for item in list(tree)[:4])
        return f"a {kind} of {len(tree)}: ({inner}{', …' if len(tree) > 4 else ''})"
    if isinstance(tree, Opaque):
        value = tree.value
        return value.summary or f"a {value.type}" if isinstance(value, ObjectValue) else f"a {value.type}"
    return "an array"


def _bare(text: str) -> str:
    """'a dict with keys mean' -> 'dict with keys mean' (inside a list of parts)."""
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :]
    return text


def differences(actual: Tree, expected: Tree, path: Path = ()) -> tuple[list[str], list[str]]:
    """How ``actual``'s structure differs from ``expected``'s: (problems, notes). A list where a tuple is
    expected (or the reverse) is no problem: it is compared as the other, with a note."""
    problems: list[str] = []
    notes: list[str] = []
    where = path_text(path)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected {describe(expected)}, got {describe(actual)}"], notes
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing:
            problems.append(f"{where}: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if extra:
            problems.append(f"{where}: unexpected key{'s' if len(extra) > 1 else ''} {', '.join(extra)}")
        for key in expected:
            if key in actual:
                _merge(differences(actual[key], expected[key], (*path, key)), problems, notes)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            return [f"{where}: expected {describe(expected)}, got {describe(actual)}"], notes
        if len(actual) != len(expected):
            return [f"{where}: expected {describe(expected)}, got {describe(actual)}"], notes
        if type(actual) is not type(expected):
            got, wanted = type(actual).__name__, type(expected).__name__
            notes.append(f"{where}: a {got} where a {wanted} is expected, compared as one")
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _merge(differences(a, e, (*path, index)), problems, notes)
    elif is_container(actual):
        problems.append(f"{where}: expected an array, got {describe(actual)}")
    return problems, notes


def _merge(found: tuple[list[str], list[str]], problems: list[str], notes: list[str]) -> None:
    problems.extend(found[0])
    notes.extend(found[1])


def at(tree: Tree, path: Path) -> Tree:
    """The subtree at ``path`` (which ``differences`` found present)."""
    for key in path:
        if isinstance(tree, dict) and isinstance(key, str):
            tree = tree[key]
            continue
        if not (isinstance(tree, (tuple, list)) and isinstance(key, int)):
            raise KeyError(f"no {path_text(path)} in {describe(tree)}")
        tree = tree[key]
    return tree

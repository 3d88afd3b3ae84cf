"""Reading a submission's source without running it: size, encoding, syntax, top-level names.

Parsing is not executing: the grader's own process may do this safely. What is found here picks the
exercise and points at lines; it never decides a verdict.
"""

from __future__ import annotations

import ast
import difflib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError

MAX_SOURCE_BYTES = 1024 * 1024
MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024  # a notebook's outputs (images) count too; its code is held to the limit above
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    line: int | None
    offset: int | None
    text: str | None


@dataclass(frozen=True)
class Source:
    path: Path
    text: str
    sha256: str
    problem: SyntaxProblem | None = None
    names: frozenset[str] = field(default_factory=frozenset)
    definitions: frozenset[str] = field(default_factory=frozenset)

    def line(self, number: int) -> str:
        """Line ``number`` (1-based) as Python counts lines: form feeds and the like do not end one."""
        lines = _LINE_END.split(self.text)
        return lines[number - 1] if 0 < number <= len(lines) else ""


LINK_REFUSED = (
    "is a symbolic link, or lies below a linked folder: the grader reads only a regular file where it lies "
    "(a link could stand for another learner's file or the reference); copy the file itself there"
)


def read_source(path: Path) -> Source:
    """Reads and parses a submission. A missing or unreadable file is a usage error; bad code is not.

    Only a regular file is read, and never through a symbolic link: neither the file itself nor a folder
    on the way as the path was given (below the working directory for an absolute path) may be one. The
    file is opened without following a link and checked after opening, so a link swapped in between
    is refused too. What a refused path points to is never read, so none of its text can be shown.
    """
    _refuse_linked_folders(path)
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} {LINK_REFUSED}") from exc
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise UsageError(f"not a regular file: {path}")
        limit = MAX_NOTEBOOK_BYTES if _is_notebook(path) else MAX_SOURCE_BYTES
        try:
            data = stream.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > limit:
        problem = SyntaxProblem(f"the file is larger than {limit // 1024} KiB", None, None, None)
        return Source(path, "", digest, problem)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = SyntaxProblem(f"the file is not UTF-8 text (byte {exc.start})", None, None, None)
        return Source(path, "", digest, problem)
    if _is_notebook(path):
        try:
            text = notebook_code(text)
        except ValueError as exc:
            return Source(path, "", digest, SyntaxProblem(str(exc), None, None, None))
        if len(text.encode("utf-8")) > MAX_SOURCE_BYTES:
            problem = SyntaxProblem(
                f"the notebook's code is larger than {MAX_SOURCE_BYTES // 1024} KiB", None, None, None
            )
            return Source(path, "", digest, problem)
    return parse_source(path, text, digest)


def _is_notebook(path: Path) -> bool:
    return path.suffix.lower() == ".ipynb"


def notebook_code(text: str) -> str:
    """The code cells of a Jupyter notebook (nbformat 4), as one Python file: each cell after a comment line
    ``# cell N`` (N counts every cell, as Jupyter shows them, from 1), so that a line number in a report leads
    to the cell. Jupyter's own syntax is commented out, not run: ``%magic`` and ``!shell`` lines, and the
    whole of a cell that starts with a ``%%cell`` magic. Raises ``ValueError`` saying what is wrong."""
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"the notebook is not valid JSON ({exc}): save it again from Jupyter, or export it as .py"
        ) from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("the notebook has no list of cells (nbformat 4 is read): save it again from Jupyter")
    parts: list[str] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError(f"cell {number} of the notebook has no text as its source")
        parts.append(f"# cell {number}\n{_without_magics(source)}\n")
    return "".join(parts)


def _without_magics(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return "\n".join(f"# {line}" for line in lines)
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def _refuse_linked_folders(path: Path) -> None:
    """A usage error when a folder on the way to ``path`` is a symbolic link: every folder of a relative
    path as given, and of an absolute one those below the working directory."""
    absolute = Path(os.path.abspath(path))
    base = Path.cwd() if not path.is_absolute() or absolute.is_relative_to(Path.cwd()) else absolute.parent
    if not absolute.is_relative_to(base):  # a relative path that climbs out with ..: check all of it
        base = Path(absolute.anchor)
    folder = base
    for part in absolute.parent.relative_to(base).parts:
        folder = folder / part
        if folder.is_symlink():
            raise UsageError(f"{path} {LINK_REFUSED}")


def parse_source(path: Path, text: str, digest: str = "") -> Source:
    """Parses source text that is already in hand (a file read, or a function's own source)."""
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        problem = SyntaxProblem(str(exc.msg), exc.lineno, exc.offset, exc.text)
        return Source(path, text, digest, problem)
    except (RecursionError, MemoryError, ValueError) as exc:
        problem = SyntaxProblem(f"the file cannot be parsed: {type(exc).__name__}", None, None, None)
        return Source(path, text, digest, problem)
    definitions = frozenset(
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    )
    return Source(path, text, digest, None, frozenset(top_level_names(tree)), definitions)


def top_level_names(tree: ast.Module) -> set[str]:
    """Names bound at module level by def, class, assignment or import."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def closest_name(target: str, names: list[str] | frozenset[str]) -> str | None:
    """The defined name most like ``target`` (a typo, another case, a near spelling), if any is close."""
    candidates = [n for n in names if not n.startswith("__")]
    lowered = {n.lower(): n for n in candidates}
    if target.lower() in lowered:
        return lowered[target.lower()]
    matches = difflib.get_close_matches(target, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


NEAREST_MARGIN = 0.1  # how much nearer one exercise's entry point must be spelt than the next


def known_exercise(exercise_id: str, ids: Iterable[str]) -> str:
    """``exercise_id`` where it is one of ``ids``; a usage error that lists them otherwise."""
    known = sorted(ids)
    if exercise_id not in known:
        raise UsageError(f"unknown exercise {exercise_id!r} (known: {', '.join(known) or 'none'})")
    return exercise_id


def pick_exercise(source: Source, exercise_id: str | None, entry_points: dict[str, str]) -> str:
    """The id of the exercise a file is graded against, from ``entry_points`` (id -> entry point name): the
    one named, else the one whose entry point the file defines, else the only one, else the one whose entry
    point a defined name spells most nearly. A usage error that says why where none can be chosen."""
    if exercise_id is not None:
        return known_exercise(exercise_id, entry_points)
    if not entry_points:
        raise UsageError("no exercises are installed")
    names = source.names or _names_by_text(source.text, entry_points)
    matches = [e for e, entry in entry_points.items() if entry in names]
    if len(matches) == 1:
        return matches[0]
    if not matches and len(entry_points) == 1:
        return next(iter(entry_points))  # graded anyway: the report names the missing function
    nearest = None if matches else _nearest_exercise(names, entry_points)
    if nearest is not None:
        return nearest  # a near spelling of one exercise's entry point: graded, the report names the name
    listing = ", ".join(f"{e} ({entry_points[e]})" for e in (matches or entry_points))
    if matches:
        raise UsageError(
            f"{source.path} defines the entry points of several exercises: {listing}; choose one with --exercise"
        )
    raise UsageError(f"{source.path} defines no known entry point; exercises: {listing}; choose one with --exercise")


def _nearest_exercise(names: frozenset[str], entry_points: dict[str, str]) -> str | None:
    """The exercise whose entry point a defined name spells most nearly (a typo, another case), where one is
    clearly nearer than every other; None where none is near or two are about as near."""
    scored = []
    for exercise_id, entry in entry_points.items():
        near = closest_name(entry, names)
        if near is not None:
            scored.append((difflib.SequenceMatcher(None, entry.lower(), near.lower()).ratio(), exercise_id))
    scored.sort(reverse=True)
    if scored and (len(scored) == 1 or scored[0][0] - scored[1][0] >= NEAREST_MARGIN):
        return scored[0][1]
    return None


def _names_by_text(text: str, entry_points: dict[str, str]) -> frozenset[str]:
    """For a file that does not parse: entry points that appear after 'def '."""
    return frozenset(entry for entry in entry_points.values() if f"def {entry}" in text)


def find_constructs(text: str, pointers: list[str]) -> list[int]:
    """Lines where the named constructs appear, in file order: ``call:NAME`` (a call of NAME or
    ``x.NAME``), ``keyword:NAME`` (an argument ``NAME=``), ``def:NAME`` (a function definition)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return []
    wanted = {tuple(p.split(":", 1)) for p in pointers}
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if ("call", name) in wanted:
                lines.add(node.lineno)
            lines.update(kw.value.lineno for kw in node.keywords if ("keyword", kw.arg) in wanted)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ("def", node.name) in wanted:
            lines.add(node.lineno)
    return sorted(lines)

"""Where exercises live, and a first look at each one that imports neither numpy nor pydantic.

``spec.py`` loads and validates exercises; this module only finds their folders and, for ``grader grade``'s
head start (``pipeline.headstart``), reads the few fields that say how a submission's child starts. That
look is unvalidated and only ever a guess: the loaded exercise decides.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

SPEC_FILE = "exercise.toml"
EXERCISES_ENV = "GRADER_EXERCISES"
BUNDLED = "_bundled"  # grader/_bundled/{exercises,reference} in a wheel (pyproject.toml, force-include)


def exercise_roots() -> list[Path]:
    """Folders that hold exercises: ``$GRADER_EXERCISES`` (os.pathsep-separated), else the bundled ones:
    a source checkout's ``exercises/``, or the copy a wheel ships inside the package (``grader/_bundled``),
    found through the package's resources wherever pip put it (--user, --prefix, --target, a system pip)."""
    configured = os.environ.get(EXERCISES_ENV)
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    root = Path(__file__).resolve().parents[2]
    checkout = root / "exercises" if (root / "pyproject.toml").is_file() else None
    for candidate in (checkout, bundled_folder() / "exercises"):
        if candidate is not None and candidate.is_dir():
            return [candidate]
    return []


def bundled_folder() -> Path:
    """Where an installed wheel keeps its exercises and references: ``grader/_bundled``, a real folder
    (the grader reads them by path, and the child is kept from seeing them)."""
    resource = importlib.resources.files("grader") / BUNDLED
    return resource if isinstance(resource, Path) else Path(str(resource))


@dataclass(frozen=True)
class Glance:
    """What a first look at an exercise's spec says: enough to start its submissions' children."""

    id: str
    entry_point: str
    preload: tuple[str, ...]
    folder: Path
    reference_path: Path  # the reference solution, or a learner pack's stored outputs


def glance_at_exercises(roots: list[Path] | None = None) -> list[Glance]:
    """A first look at every exercise under the roots, in the order discovery loads them; a spec this
    cannot read is left out (loading it properly reports it)."""
    found = []
    for root in exercise_roots() if roots is None else roots:
        try:
            folders = sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file())
        except OSError:
            continue
        for folder in folders:
            glance = _glance(folder)
            if glance is not None:
                found.append(glance)
    return found


def _glance(folder: Path) -> Glance | None:
    try:
        data = tomllib.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        source = data.get("reference") or data.get("expected") or ""
        preload = data.get("preload", [])
        glance = Glance(
            id=str(data["id"]),
            entry_point=str(data["entry_point"]["name"]),
            preload=tuple(str(name) for name in preload),
            folder=folder.resolve(),
            reference_path=(folder.resolve() / str(source)).resolve(),
        )
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None
    return glance if isinstance(preload, list) else None

"""What a submission's child is made of, from the exercise and the options: its preloads, the folders it
must not see, the compilation cache it reads. Shared by grading and by ``grader grade``'s head start
(``headstart.py``), so that a child started ahead is made exactly as grading would make it; nothing here
imports numpy or pydantic.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import grader
from grader.exercise.roots import BUNDLED, bundled_folder
from grader.sandbox.isolation import Isolation
from grader.sandbox.start import ChildJob

CACHE_ENV = "GRADER_CACHE_DIR"
TRUSTED_XLA = "xla-trusted"  # JAX's compilation cache as only trusted runs write it


def default_cache_dir() -> Path | None:
    """``$GRADER_CACHE_DIR`` (empty to disable), else ``$XDG_CACHE_HOME/grader``, else ``~/.cache/grader``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "grader"


def usable_cache_dir(cache_dir: Path | None) -> tuple[Path | None, str]:
    """``cache_dir`` if it can be created and written to, else None and why. A cache only saves time: a
    folder that cannot hold one (read-only, below a file, not permitted) means grading without it, never
    a fault (under bwrap the children would be given a folder that does not exist)."""
    if cache_dir is None:
        return None, ""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache_dir):
            pass
    except OSError as exc:
        return None, f"the cache folder {cache_dir} cannot be used ({exc.strerror or exc}): graded without the cache"
    return cache_dir, ""


def submission_cache(iso: Isolation, cache_dir: Path | None) -> tuple[dict[str, str], list[str]]:
    """The compilation cache a submission's child uses, and how: the child's environment variables for it,
    and the folders it may read besides.

    Where the child cannot write it, it reads the trusted cache, which only reference runs write: under
    bwrap through a read-only mount, and as another uid (the grader is root) by permissions, the folder
    then opened to the child like the Python environment where it lies under a closed folder. A child
    that runs as the grader's own user could write whatever it reads: it gets a cache of its own.
    """
    if cache_dir is None:
        return {}, []
    trusted = cache_dir / TRUSTED_XLA
    if iso.level == "bwrap" or (iso.drop_to is not None and closed_to_others(trusted)):
        return compile_cache_env(cache_dir, TRUSTED_XLA), [str(trusted)]
    return compile_cache_env(cache_dir, "xla-submissions"), []


def closed_to_others(folder: Path) -> bool:
    """Makes ``folder`` (mode 0755) where missing; whether it is ours and others cannot write it."""
    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def compile_cache_env(cache_dir: Path | None, name: str) -> dict[str, str]:
    if cache_dir is None:
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir / name),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


def hidden_paths(folder: Path, reference_path: Path) -> list[str]:
    """Folders a submission of the exercise in ``folder`` must not see: the exercises, the references
    (also as a wheel bundles them inside the package, and as older wheels installed them under
    ``<prefix>/share``), a checkout.

    Every ``grader/_bundled`` on the import path is hidden, not only the imported package's: an editable
    install leaves a copy in site-packages beside the checkout it imports from."""
    hidden = [
        str(folder.parent),
        str(reference_path.parent),
        str(bundled_folder()),
        str(Path(sys.prefix) / "share" / "jax-grader"),
    ]
    for entry in sys.path:
        copy = Path(entry or os.curdir, "grader", BUNDLED)
        if copy.is_dir() and str(copy.resolve()) not in hidden:
            hidden.append(str(copy.resolve()))
    package_parent = Path(grader.__file__).resolve().parent.parent
    if package_parent.name not in ("site-packages", "dist-packages"):
        hidden.append(str(package_parent))
    return hidden


def submission_job(
    *,
    entry_point: str,
    preload: list[str],
    hidden: list[str],
    iso: Isolation,
    cache_dir: Path | None,
    source: str = "",
    filename: str = "",
    cases: list[dict] | None = None,
) -> ChildJob:
    """The job of a submission's child (without its source and cases: the job of a child started ahead)."""
    env, readable = submission_cache(iso, cache_dir)
    return ChildJob(
        source=source,
        filename=filename,
        entry_point=entry_point,
        cases=cases or [],
        preload=list(preload),
        hidden_paths=hidden,
        env=env,
        readable=readable,
    )

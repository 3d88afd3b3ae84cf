"""The wheel finds its bundled exercises however pip installed it (--target, --prefix), not only into sys.prefix.

The wheel is built once from this checkout and installed without dependencies; the installed grader runs on
the base interpreter (not this virtual environment, whose editable install would win), with the install
folder first on PYTHONPATH and this environment's site-packages after it, for jax and the rest.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("hatchling")

ROOT = Path(__file__).resolve().parent.parent
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = _run([*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(folder)])
    assert built.returncode == 0, built.stderr
    (found,) = folder.glob("jax_grader-*.whl")
    return found


def _install(wheel: Path, how: str, folder: Path) -> Path:
    """Installs the wheel ``how`` (--target or --prefix) into ``folder``; returns the folder to import from.
    --ignore-installed: pip would otherwise uninstall this environment's own grader before a --prefix install."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "--no-deps"]
    pip += ["--ignore-installed", "--no-warn-script-location"]
    installed = _run([*pip, how, str(folder), str(wheel)])
    assert installed.returncode == 0, installed.stderr
    if how == "--target":
        return folder
    scheme = {"base": str(folder), "platbase": str(folder)}
    return Path(sysconfig.get_paths(vars=scheme)["purelib"])


def _environment(packages: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADER_", "PYTHON"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(packages), SITE_PACKAGES]),
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"),
    )
    return env


@pytest.mark.parametrize("how", ["--target", "--prefix"])
def test_an_installed_wheel_lists_its_bundled_exercises(wheel: Path, how: str, tmp_path: Path) -> None:
    packages = _install(wheel, how, tmp_path / "install")
    env = _environment(packages, tmp_path / "home")
    where = _run([BASE_PYTHON, "-c", "import grader; print(grader.__file__)"], env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(packages)  # the installed copy, not this checkout

    listed = _run([BASE_PYTHON, "-m", "grader", "exercises", "--format", "json"], env=env, cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    assert "train-eval-dropout" in [row["id"] for row in json.loads(listed.stdout)]
    bundled = packages / "grader" / "_bundled"
    assert (bundled / "reference" / "train_eval_dropout.py").is_file()  # where exercise.toml's ../../ leads
    assert not (packages.parent / "share" / "jax-grader").exists()
    assert importlib.metadata.distribution("jax-grader").files  # this environment's install is left alone


def test_every_bundled_folder_on_the_import_path_is_hidden_from_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grader.exercise.roots import bundled_folder
    from grader.exercise.spec import get_exercise
    from grader.pipeline.recipe import hidden_paths

    copy = tmp_path / "grader" / "_bundled"  # what an editable install leaves in site-packages
    (copy / "reference").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))

    exercise = get_exercise("train-eval-dropout")
    hidden = hidden_paths(exercise.folder, exercise.reference_path)

    assert str(bundled_folder()) in hidden
    assert str(copy.resolve()) in hidden

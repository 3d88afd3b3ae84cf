"""Pieces of the child-side harness that can be checked without starting a child."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from grader.sandbox.process import HARNESS


@pytest.fixture
def harness():  # the harness is a standalone script, loaded here by path as the child does
    spec = importlib.util.spec_from_file_location("grader_harness_under_test", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strip_sys_path_drops_hidden_folders_but_keeps_the_environment(harness, monkeypatch, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    venv = checkout / ".venv"
    site = venv / "lib" / "site-packages"
    for folder in (site, checkout / "exercises"):
        folder.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "path", ["", str(checkout), str(site), str(checkout / "exercises"), "/usr/lib/python3"])
    harness._strip_sys_path([str(checkout), str(checkout / "exercises")])
    assert sys.path == [str(site), "/usr/lib/python3"]


def test_encode_value_describes_non_arrays(harness) -> None:
    import numpy as np

    assert harness._encode_value((1, 2), 10)["kind"] == "object"
    assert harness._encode_value({"params": 1}, 10)["type"] == "dict"
    encoded = harness._encode_value(np.arange(3, dtype=np.float32), 10)
    assert encoded["kind"] == "array" and encoded["wire_dtype"] == "<f4" and encoded["shape"] == [3]
    assert harness._encode_value(np.zeros(11), 10)["kind"] == "too-large"
    assert harness._encode_value(np.array(["a"]), 10)["kind"] == "object"

"""The baseline a course would write without the grader: one pytest process per submission, importing
the submission and the reference in-process and comparing them on the same cases.

Run by ``benchmarks/batch_throughput.py`` with ``SUBMISSION``, ``REFERENCE`` and ``BASELINE_CASES`` set.
"""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

with open(os.environ["BASELINE_CASES"], encoding="utf-8") as handle:
    CASES = json.load(handle)


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def submission():
    return _load("submission", os.environ["SUBMISSION"])


@pytest.fixture(scope="module")
def reference():
    return _load("reference", os.environ["REFERENCE"])


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case, submission, reference):
    x = jnp.asarray(np.asarray(case["x"], dtype=np.float32))
    expected = np.asarray(reference.model_train_eval_forward(case["seed"], x, case["train"]))
    actual = np.asarray(submission.model_train_eval_forward(case["seed"], x, case["train"]))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)

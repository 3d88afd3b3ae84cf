"""What the grading ran on: versions, platform, and the settings that can change numeric results."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Literal

from grader.report.schema import Environment
from grader.sandbox.isolation import Isolation

PACKAGES = ("jax", "jaxlib", "flax", "numpy")
# Distributions that add or change JAX backends; their presence changes where and how outputs are computed.
PLUGIN_MARKERS = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu", "jax-metal", "jax_metal")
SETTINGS_PREFIXES = ("JAX_", "XLA_", "CUDA_VISIBLE", "TPU_")

# Where the expected outputs came from: the reference cache ("hit"), a run that filled it ("miss"), or a run
# without a cache ("off").
ReferenceCache = Literal["hit", "miss", "off"]


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def grader_version() -> str:
    return package_version("jax-grader") or "0+unknown"


def numeric_fingerprint() -> dict[str, str]:
    """Everything besides the code and inputs that can change the reference's outputs."""
    found = {name: package_version(name) or "-" for name in (*PACKAGES, "ml_dtypes")}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(PLUGIN_MARKERS):
            found[name] = dist.version
    found["python"] = platform.python_version()
    found["machine"] = platform.machine()
    for key, value in sorted(os.environ.items()):
        if key.startswith(SETTINGS_PREFIXES) and key != "JAX_COMPILATION_CACHE_DIR":
            found[f"env:{key}"] = value
    return found


def describe_environment(
    *, backend: str | None, isolation: Isolation | None, reference_cache: ReferenceCache
) -> Environment:
    return Environment(
        python=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
        grader=grader_version(),
        backend=backend,
        isolation=isolation.level if isolation else "not run",
        isolation_detail=isolation.description if isolation else "the submission was not run",
        reference_cache=reference_cache,
        jax=package_version("jax"),
        jaxlib=package_version("jaxlib"),
        flax=package_version("flax"),
        numpy=package_version("numpy"),
    )

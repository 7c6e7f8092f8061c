"""A plug-in model package as a data scientist would write one, built and installed with pip into a folder.

``write_plugin_package`` writes a pyproject (its entry point in the group ``consortia.models``) and a tiny
MLP factory; ``install_plugin`` runs ``pip install --no-deps --no-build-isolation --no-index --target DIR`` so
that only processes with DIR on their PYTHONPATH have the plug-in (nothing lands in the venv).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

FACTORY = '''\
"""A tiny MLP for Consortia: one hidden ReLU layer of ``hidden`` units."""

from torch import nn


def tiny_mlp(spec, hidden=8):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(spec.n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, spec.n_classes),
    )
'''


def write_plugin_package(root: Path, distribution: str, version: str, model: str) -> Path:
    """A source tree registering ``model`` (``<module>.models:tiny_mlp``) as distribution ``distribution``."""
    module = distribution.replace("-", "_")
    package = root / distribution
    (package / module).mkdir(parents=True)
    (package / module / "__init__.py").write_text("")
    (package / module / "models.py").write_text(FACTORY)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{distribution}"
            version = "{version}"
            dependencies = ["torch"]

            [project.entry-points."consortia.models"]
            {model} = "{module}.models:tiny_mlp"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return package


def install_plugin(package: Path, target: Path) -> Path:
    """``pip install`` the package into ``target`` (offline, no dependencies: torch is already here)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [*command, "--target", str(target), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=package.parent,  # setuptools writes its build folders next to the sources, not in the repository
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{done.stdout}\n{done.stderr}")
    return target


def on_pythonpath(folder: Path) -> dict[str, str]:
    """The environment change that puts ``folder`` first on this environment's PYTHONPATH."""
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(folder) + (os.pathsep + rest if rest else "")}

"""The code version a model was trained with: the git commit of the checkout, else the installed package version."""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

from pydantic import BaseModel

_CHECKOUT = Path(__file__).resolve().parents[2]  # the folder holding components/ (a git checkout, or site-packages)
_PACKAGE = "consortia"


class CodeVersion(BaseModel, frozen=True):
    """``source`` git: ``version`` is the commit (``dirty`` when tracked files differ from it); package: the
    installed ``consortia`` version."""

    source: str  # "git" | "package"
    version: str
    dirty: bool = False


@functools.cache
def code_version(checkout: Path = _CHECKOUT) -> CodeVersion:
    """The commit of ``checkout`` if it is the top of a git work tree, else the package version."""
    top = _git(checkout, "rev-parse", "--show-toplevel")
    if top is not None and Path(top).resolve() == checkout.resolve():
        commit = _git(checkout, "rev-parse", "HEAD")
        if commit:
            changed = _git(checkout, "status", "--porcelain", "--untracked-files=no")
            return CodeVersion(source="git", version=commit, dirty=bool(changed))
    try:
        return CodeVersion(source="package", version=installed_version(_PACKAGE))
    except PackageNotFoundError:
        return CodeVersion(source="package", version="unknown")


def _git(folder: Path, *args: str) -> str | None:
    """git's stdout, stripped; None when git is missing or the folder is no work tree."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None

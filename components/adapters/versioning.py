"""Versioned run metadata in a DVC repository without git (the only DVC importer).

The repository lives in the workspace (``metadata/``) with a local default remote (``metadata-remote/``).
Contracts, party manifests and final models are added there; their md5s go into the run summary and the
registry tags, so a model version points at exactly the metadata that produced it.

Every public method raises DVC's errors as Consortia's, naming the edge ``metadata``: ``EdgeUnavailable`` when
a retry may cure them (the repository is locked by another DVC process, a transfer to or from the remote
failed, an OS error other than a missing path or a denied permission), ``EdgeFailure`` for every other
DVC error (a missing output, a broken config, not a DVC repository, ...). A path outside the repository
stays a ValueError: it is the caller's mistake, not the edge's.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dvc.config import Config
from dvc.exceptions import DvcException, FileTransferError
from dvc.lock import LockError
from dvc.logger import set_loggers_level
from dvc.repo import Repo

from components.core.errors import (
    PERMANENT_OS_ERRORS,
    ConsortiaError,
    EdgeFailure,
    EdgeUnavailable,
    raising_consortia_errors,
)

EDGE = "metadata"
_REMOTE_NAME = "local"


# OS errors that say a path or its permissions are wrong: retrying cannot cure them.
def _metadata_error(error: Exception) -> ConsortiaError | None:
    """Consortia's error for a DVC or OS error; None for errors that are not the edge's."""
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, LockError | FileTransferError):  # another DVC process holds the lock; upload failed
        return EdgeUnavailable(EDGE, message)
    if isinstance(error, (DvcException, *PERMANENT_OS_ERRORS)):  # DVC's FileExistsLocallyError is an OSError too
        return EdgeFailure(EDGE, message)
    if isinstance(error, OSError):
        return EdgeUnavailable(EDGE, message)
    return None


@raising_consortia_errors(_metadata_error)
class MetadataRepo:
    """A no-SCM DVC repository at ``root`` whose default remote is the folder ``remote``."""

    def __init__(self, root: Path, remote: Path) -> None:
        """Open the repository, creating it and its remote folder first if needed (idempotent)."""
        self.root = Path(root).resolve()
        self.remote = Path(remote).resolve()
        self.remote.mkdir(parents=True, exist_ok=True)
        if not (self.root / Repo.DVC_DIR).is_dir():
            self._init()
        self._configure()

    def track(self, path: Path) -> str:
        """``dvc add`` a file inside the repository; returns the md5 recorded in its ``.dvc`` file."""
        target = Path(path).resolve()
        if not target.is_relative_to(self.root):
            raise ValueError(f"{target} is outside the metadata repository {self.root}")
        with self._open() as repo:
            (stage,) = repo.add(str(target))
            return stage.outs[0].hash_info.value

    def track_all(self, paths: Sequence[Path]) -> dict[Path, str]:
        """``dvc add`` several files in one go (one index load, not one per file); path -> md5 of each."""
        targets = [Path(path).resolve() for path in paths]
        for target in targets:
            if not target.is_relative_to(self.root):
                raise ValueError(f"{target} is outside the metadata repository {self.root}")
        if not targets:
            return {}
        with self._open() as repo:
            stages = repo.add([str(target) for target in targets])
            return {Path(path): stage.outs[0].hash_info.value for path, stage in zip(paths, stages, strict=True)}

    def push(self) -> int:
        """Push every tracked file to the remote; returns how many files were transferred."""
        with self._open() as repo:
            return repo.push()

    def untrack(self, path: Path) -> None:
        """``dvc remove`` the file's ``.dvc`` record (the file itself stays); nothing happens if it has none."""
        record = Path(path).resolve().with_name(Path(path).name + ".dvc")
        if not record.exists():
            return
        with self._open() as repo:
            repo.remove(str(record))

    def tracked(self) -> dict[str, str]:
        """Path of every tracked file (relative to the root, POSIX style) -> its md5."""
        with self._open() as repo:
            return {
                Path(out.fs_path).relative_to(self.root).as_posix(): out.hash_info.value
                for out in sorted(repo.index.outs, key=lambda out: out.fs_path)
            }

    @contextmanager
    def _open(self) -> Iterator[Repo]:
        """The repository for one operation, with DVC's console logging (stdout) held at warnings."""
        with set_loggers_level(logging.WARNING), Repo(str(self.root)) as repo:
            yield repo

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with set_loggers_level(logging.WARNING):
            repo = Repo.init(str(self.root), no_scm=True)
        default_site_cache = repo.site_cache_dir  # under /var/tmp/dvc until _configure moves it into .dvc/
        repo.close()
        self._configure()
        shutil.rmtree(default_site_cache, ignore_errors=True)

    def _configure(self) -> None:
        """Analytics off, the remote as default, DVC's site cache inside ``.dvc/tmp``; writes only on change."""
        core: dict[str, Any] = {
            "no_scm": True,
            "analytics": False,
            "remote": _REMOTE_NAME,
            "site_cache_dir": str(self.root / Repo.DVC_DIR / "tmp" / "site-cache"),
        }
        config = Config(dvc_dir=str(self.root / Repo.DVC_DIR))
        current = config.validate(config.read("repo"))
        remote_url = current["remote"].get(_REMOTE_NAME, {}).get("url")
        if remote_url == str(self.remote) and all(current["core"].get(k) == v for k, v in core.items()):
            return
        with config.edit("repo") as editable:
            editable["core"].update(core)
            editable["remote"][_REMOTE_NAME] = {"url": str(self.remote)}

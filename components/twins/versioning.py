"""In-memory twin of the metadata edge (``MetadataPort``); no DVC.

``track`` reads the file, keeps its bytes under their md5 (the hash DVC records for a file) and records the
path; ``push`` copies the content of every tracked file the remote lacks into ``remote`` and returns how many
objects it copied, as ``dvc push`` does. Only files are tracked (DVC would hash a directory as a whole).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from components.core.errors import EdgeFailure
from components.twins.faults import FaultInjection, injectable

EDGE = "metadata"


class MemoryMetadata(FaultInjection):
    """``files``: tracked path -> md5; ``cache`` and ``remote``: md5 -> bytes; ``root`` bounds the paths if set."""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = Path(root).resolve() if root is not None else None
        self.files: dict[Path, str] = {}
        self.cache: dict[str, bytes] = {}
        self.remote: dict[str, bytes] = {}

    @injectable
    def track(self, path: Path) -> str:
        """The md5 of the file's bytes, recorded for ``path`` (raises like the DVC adapter)."""
        target = Path(path).resolve()
        if self.root is not None and not target.is_relative_to(self.root):
            raise ValueError(f"{target} is outside the metadata repository {self.root}")
        if target.is_dir():
            raise ValueError(f"{target} is a directory; MemoryMetadata tracks files only")
        if not target.is_file():
            raise EdgeFailure(EDGE, f"OutputDoesNotExistError: output '{path}' does not exist")
        content = target.read_bytes()
        md5 = hashlib.md5(content).hexdigest()
        self.cache[md5] = content
        self.files[target] = md5
        return md5

    def track_all(self, paths: Sequence[Path]) -> dict[Path, str]:
        return {Path(path): self.track(path) for path in paths}

    @injectable
    def push(self) -> int:
        missing = {md5 for md5 in self.files.values() if md5 not in self.remote}
        for md5 in missing:
            self.remote[md5] = self.cache[md5]
        return len(missing)

    @injectable
    def untrack(self, path: Path) -> None:
        self.files.pop(Path(path).resolve(), None)

    @injectable
    def tracked(self) -> dict[str, str]:
        """Path of every tracked file (relative to the root when set, POSIX style) -> its md5."""
        return {
            (path.relative_to(self.root) if self.root is not None else path).as_posix(): md5
            for path, md5 in sorted(self.files.items())
        }

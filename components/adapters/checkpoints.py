"""Round checkpoints on disk: global parameters, strategy state and round updates as .npz (no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from components.core.params import Params


def save_arrays(path: Path, arrays: Params) -> Path:
    """Write arrays atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **{name: np.asarray(a) for name, a in arrays.items()})
    os.replace(temporary, path)
    return path


def load_arrays(path: Path) -> Params:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def save_json(path: Path, payload: dict[str, Any]) -> Path:
    return write_text_atomically(path, json.dumps(payload, indent=2, default=str))


class RunCheckpoints:
    """Layout of one run's checkpoint folder."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.folder = root / run_id

    def global_params(self, round_number: int) -> Path:
        return self.folder / f"global_{round_number:04d}.npz"

    def strategy_state(self, round_number: int) -> Path:
        return self.folder / f"strategy_{round_number:04d}.npz"

    def update(self, round_number: int, party: str) -> Path:
        return self.folder / "updates" / f"{round_number:04d}" / f"{party}.npz"

    def updates_meta(self, round_number: int) -> Path:
        return self.folder / "updates" / f"{round_number:04d}" / "meta.json"

    @property
    def config(self) -> Path:
        """The federation config the run started with (JSON, absolute paths): what resume reuses."""
        return self.folder / "federation.json"

    @property
    def state(self) -> Path:
        return self.folder / "state.json"

    def last_round(self) -> int:
        """The last round whose global parameters were saved (0 = only the initial model)."""
        if not self.state.exists():
            return -1
        return int(json.loads(self.state.read_text())["last_round"])

"""Round checkpoints on disk: global parameters, strategy state and round updates as .npz (no pickle).

A run's round writes go through its ``WriteBehind`` (in order, off the round's path); the latest round's model
and strategy state are kept in memory, so the next round and the evaluation do not read back what was just
written. Every other read waits for the queued writes first."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from components.adapters.write_behind import WriteBehind
from components.core.errors import RunStateError
from components.core.params import Params
from components.core.strategies.base import ClientUpdate


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
        self.run_id = run_id
        self.folder = root / run_id
        self.writer = WriteBehind(f"checkpoints-{run_id}"[:60])
        self._latest: tuple[int, Params, Params] | None = None  # round, global model, strategy state (read-only)

    def global_params(self, round_number: int) -> Path:
        return self.folder / f"global_{round_number:04d}.npz"

    def strategy_state(self, round_number: int) -> Path:
        return self.folder / f"strategy_{round_number:04d}.npz"

    def updates(self, round_number: int) -> Path:
        """Every party's update of a round in one archive, each tensor under ``party/name``."""
        return self.folder / "updates" / f"{round_number:04d}.npz"

    def updates_meta(self, round_number: int) -> Path:
        return self.folder / "updates" / f"{round_number:04d}.json"

    @property
    def config(self) -> Path:
        """The federation config the run started with (JSON, absolute paths): what resume reuses."""
        return self.folder / "federation.json"

    @property
    def state(self) -> Path:
        return self.folder / "state.json"

    @property
    def lease_file(self) -> Path:
        return self.folder / "coordinator.lock"

    def _lease(self) -> FileLock:
        return FileLock(self.lease_file, blocking=False, thread_local=False, preserve_lock_file=True)

    def take_lease(self) -> FileLock:
        """Hold the run while this process coordinates it (release the returned lock when done); the OS frees
        the lock when the process dies, even by SIGKILL, so a dead coordinator never keeps a run."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lease = self._lease()
        try:
            lease.acquire()
        except Timeout:
            raise RunStateError(f"run {self.run_id} is being coordinated by another live process") from None
        return lease

    def coordinator_alive(self) -> bool:
        """True while some process holds this run's lease (its coordinator is alive); looking creates nothing."""
        if not self.lease_file.exists():  # never leased on this host (or by a version without leases)
            return False
        probe = self._lease()
        try:
            probe.acquire()
        except Timeout:
            return True
        probe.release()
        return False

    def save_round(self, round_number: int, params: Params, strategy_state: Params) -> None:
        """The round's new global model and the strategy state that produced it (kept as read-only copies).

        Their files, and every write after them, wait until ``evaluated`` or ``mark_finished``: the round's
        evaluation reads the model from memory and runs first."""
        params, strategy_state = _frozen_copy(params), _frozen_copy(strategy_state)
        self._latest = (round_number, params, strategy_state)
        self.writer.hold()
        self.writer.submit(save_arrays, self.global_params(round_number), params)
        if strategy_state:  # a stateless strategy (FedAvg) leaves no file; its state loads as {}
            self.writer.submit(save_arrays, self.strategy_state(round_number), strategy_state)

    def mark_finished(self, round_number: int, tracking_run_id: str | None) -> None:
        """Record ``round_number`` as the last finished round: where a resume starts from (written after every
        write queued before it)."""
        self.writer.submit(save_json, self.state, {"last_round": round_number, "mlflow_run_id": tracking_run_id})
        self.writer.release()

    def evaluated(self) -> None:
        """The latest round is evaluated: its held files are written now (in order, before the finished mark)."""
        self.writer.release()

    def load_global(self, round_number: int) -> Params:
        """A round's global model (read-only arrays when it is the latest saved round)."""
        if self._latest is not None and self._latest[0] == round_number:
            return dict(self._latest[1])
        self.writer.flush()
        return load_arrays(self.global_params(round_number))

    def load_strategy_state(self, round_number: int) -> Params:
        if self._latest is not None and self._latest[0] == round_number:
            return {name: array.copy() for name, array in self._latest[2].items()}  # a strategy may update it
        self.writer.flush()
        path = self.strategy_state(round_number)
        return load_arrays(path) if path.exists() else {}

    def save_updates(self, round_number: int, updates: list[ClientUpdate]) -> None:
        """Every party's checked update of a round, for valuation and reward models: one archive and its meta."""
        arrays = {f"{u.party}/{name}": array for u in updates for name, array in u.params.items()}
        meta = {u.party: {"num_examples": u.num_examples, "metrics": u.metrics} for u in updates}
        self.writer.submit(save_arrays, self.updates(round_number), arrays)
        self.writer.submit(save_json, self.updates_meta(round_number), meta)

    def flush(self) -> None:
        """Wait for every queued write (raises the first that failed)."""
        self.writer.flush()

    def close(self) -> None:
        """Flush, then stop the writer's thread."""
        self.writer.close()

    def discard_updates(self) -> int:
        """Delete every round's per-party updates (global models and strategy state stay); how many were kept."""
        self.writer.flush()
        folder = self.folder / "updates"
        count = 0
        if folder.exists():  # one archive and meta per round, or (checkpointed earlier) one file per party
            count = sum(len(json.loads(meta.read_text())) for meta in folder.glob("*.json"))
            count += sum(1 for _ in folder.glob("*/*.npz"))
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def load_updates(self, round_number: int) -> list[ClientUpdate]:
        """Every party's update of a round, also of a run checkpointed before one archive held them all (then a
        folder per round: one file per party and ``meta.json``)."""
        self.writer.flush()
        legacy = self.folder / "updates" / f"{round_number:04d}"
        if not self.updates_meta(round_number).exists() and (legacy / "meta.json").exists():
            meta = json.loads((legacy / "meta.json").read_text())
            params = {party: load_arrays(legacy / f"{party}.npz") for party in meta}
        else:
            meta = json.loads(self.updates_meta(round_number).read_text())
            params = {party: {} for party in meta}
            for key, array in load_arrays(self.updates(round_number)).items():
                party, name = key.split("/", 1)
                params[party][name] = array
        return [
            ClientUpdate(party=party, params=params[party], num_examples=info["num_examples"], metrics=info["metrics"])
            for party, info in sorted(meta.items())
        ]

    def last_round(self) -> int:
        """The last round whose global parameters were saved (0 = only the initial model)."""
        self.writer.flush()
        if not self.state.exists():
            return -1
        return int(json.loads(self.state.read_text())["last_round"])


def _frozen_copy(arrays: Params) -> Params:
    """Copies the caller cannot change under a queued write (a strategy may update its state in place)."""
    copies = {name: np.array(a, copy=True) for name, a in arrays.items()}
    for array in copies.values():
        array.flags.writeable = False
    return copies


def shown_status(root: Path, run_id: str, stored: str) -> str:
    """A run's status as stored, except that a ``running`` run whose coordinator is gone is ``interrupted``
    (resumable); a run with no checkpoint folder here (coordinated on another host) keeps its stored status."""
    checkpoints = RunCheckpoints(root, run_id)
    try:
        if stored == "running" and checkpoints.folder.exists() and not checkpoints.coordinator_alive():
            return "interrupted"
    except OSError:  # e.g. a read-only view of the workspace: the lease cannot be probed
        pass
    return stored

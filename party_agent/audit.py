"""The owner's audit log: an append-only, hash-chained JSON-lines file of what was asked of this party's data and
what left it.

One JSON object per line::

    {"seq": 7, "at": "2026-12-01T13:00:00+00:00", "event": "sent", "run_id": "...", "round": 2,
     "detail": {...}, "prev": "<hash of line 6>", "hash": "<SHA-256 of this line without its hash>"}

``event`` is ``plan`` (the plan received, in full), ``decision`` (accept / reject with the rule / hold, and by
whom), or ``sent`` (one message that left: its kind, size in bytes, the SHA-256 of its header frame and of its
tensor frames, tensor names, dtypes and shapes, and per kind the example count, metric names, validation outcome
or manifest hash; never a row value). Heartbeats are logged at most once a minute. ``hash`` is SHA-256 over the
entry's canonical JSON (sorted keys, no spaces) without ``hash``; ``prev`` is the previous entry's ``hash`` (64
zeros for the first). ``verify`` recomputes the chain, so an edited, removed or reordered line is found, and the
sidecar ``PATH.head`` (the last ``seq`` and ``hash``) finds lines cut from the end. A ``sent`` entry is written
before its message goes and the sidecar just after, so a process stopped in between leaves the sidecar one entry
behind, which ``verify`` accepts when that entry is in the chain.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.core.errors import ConfigError
from components.core.protocol import Envelope, Kind

GENESIS = "0" * 64
HEARTBEAT_EVERY_S = 60.0


def _canonical(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON without its ``hash`` field."""
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _bytes(frame: Any) -> memoryview:
    return memoryview(frame.buffer if hasattr(frame, "buffer") else frame).cast("B")


def sent_detail(envelope: Envelope, frames: Sequence[Any]) -> dict[str, Any]:
    """What one outgoing message carried, without any value: sizes, hashes, names, and per kind a summary."""
    tensors = hashlib.sha256()
    for frame in frames[1:]:
        tensors.update(_bytes(frame))
    body = envelope.body
    detail: dict[str, Any] = {
        "kind": envelope.kind.value,
        "bytes": sum(len(_bytes(frame)) for frame in frames),
        "header_sha256": hashlib.sha256(_bytes(frames[0])).hexdigest(),
        "tensors": json.loads(bytes(_bytes(frames[0]))).get("tensors", []),  # as the header sent them
        "tensors_sha256": tensors.hexdigest() if len(frames) > 1 else None,
    }
    if envelope.kind in (Kind.UPDATE, Kind.EVALUATION):
        detail.update(num_examples=body.get("num_examples"), metrics=sorted(body.get("metrics", {})))
    elif envelope.kind == Kind.VALIDATION:
        summary = body.get("summary", {})
        detail.update(success=summary.get("success"), manifest=body.get("manifest", {}).get("content_hash"))
    elif envelope.kind in (Kind.HELLO, Kind.REGISTER):
        detail.update(
            manifest=body.get("manifest", {}).get("content_hash"), resources=sorted(body.get("resources", {}))
        )
    elif envelope.kind == Kind.HEARTBEAT:
        detail.update(resources=sorted(body.get("resources", {})))
    elif envelope.kind == Kind.PROFILE_RESULT:
        detail.update(count=body.get("count"))
    elif envelope.kind in (Kind.DECISION, Kind.ERROR):
        detail.update({k: body.get(k) for k in ("verdict", "rule", "code") if k in body})
    return detail


class AuditLog:
    """Appends hash-chained entries to ``path`` (creating it); safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._heartbeat_logged = -HEARTBEAT_EVERY_S
        self._last: tuple[int, str, int] | None = None  # seq, hash and file size after this log's last append
        self._head_behind = False  # the head sidecar does not name the last entry yet (head_later)
        self._held: Any = None  # the open lock file while this process's agent holds the log

    def hold(self) -> None:
        """Held by one running agent at a time (until its process ends): a second agent on the same log would
        interleave entries of two chains, so it gets a ConfigError instead."""
        handle = self.path.with_name(self.path.name + ".lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"{self.path}: another party agent is running with this audit log; stop it before starting one"
            ) from None
        self._held = handle

    def release(self) -> None:
        """Let another agent hold the log (``hold``)."""
        if self._held is not None:
            self._held.close()
            self._held = None

    def append(
        self, event: str, run_id: str = "", round_number: int = 0, *, head_later: bool = False, **detail: Any
    ) -> dict[str, Any]:
        """Append one entry; the head sidecar follows at once, or with ``head_later`` at ``write_head`` (after the
        message the entry records has gone: renaming a file is not on a reply's path)."""
        with self._lock:
            seq, prev = self._last_entry()
            entry: dict[str, Any] = {
                "seq": seq + 1,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "event": event,
                "run_id": run_id,
                "round": round_number,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = entry_hash(entry)
            with self.path.open("ab") as handle:
                handle.write(_canonical(entry) + b"\n")
                size = handle.tell()
            self._last = (entry["seq"], entry["hash"], size)
            self._head_behind = head_later
            if not head_later:
                _write_head(self.path, entry["seq"], entry["hash"])
            return entry

    def write_head(self) -> None:
        """Bring the head sidecar up to the last entry, if an entry appended with ``head_later`` left it behind."""
        with self._lock:
            if self._head_behind and self._last is not None:
                _write_head(self.path, self._last[0], self._last[1])
                self._head_behind = False

    def _last_entry(self) -> tuple[int, str]:
        """The last entry's seq and hash: remembered from this log's last append while the file still has the
        size it left, read from the file (its head sidecar) otherwise."""
        if self._last is not None:
            seq, digest, size = self._last
            try:
                if self.path.stat().st_size == size:
                    return seq, digest
            except FileNotFoundError:
                pass
        return _head(self.path)

    def sent(self, envelope: Envelope, frames: Sequence[Any]) -> None:
        """Record one outgoing message before it goes (heartbeats at most once a minute); ``write_head`` after."""
        if envelope.kind == Kind.HEARTBEAT:
            now = time.monotonic()
            if now - self._heartbeat_logged < HEARTBEAT_EVERY_S:
                return
            self._heartbeat_logged = now
        self.append("sent", envelope.run_id, envelope.round, head_later=True, **sent_detail(envelope, frames))


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _head(path: Path) -> tuple[int, str]:
    """The last entry's seq and hash (-1 and the genesis hash for a new log)."""
    head = _head_path(path)
    if head.exists():
        data = json.loads(head.read_text())
        return int(data["seq"]), str(data["hash"])
    if path.exists() and path.stat().st_size:
        last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        entry = json.loads(last)
        return int(entry["seq"]), str(entry["hash"])
    return -1, GENESIS


def _write_head(path: Path, seq: int, digest: str) -> None:
    head = _head_path(path)
    temporary = head.with_name(head.name + ".tmp")
    temporary.write_text(json.dumps({"seq": seq, "hash": digest}))
    temporary.replace(head)


def read_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verify(path: Path) -> list[str]:
    """Every break in the chain of ``path``, one line each; [] when no entry was edited, removed or reordered."""
    if not path.exists():
        return [f"{path} does not exist"]
    problems: list[str] = []
    prev, expected_seq = GENESIS, 0
    last_hash = GENESIS
    hashes: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg})")
            continue
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"line {number}: its content does not match its hash (edited)")
        if entry.get("seq") != expected_seq:
            problems.append(f"line {number}: seq {entry.get('seq')}, expected {expected_seq} (removed or reordered)")
        if entry.get("prev") != prev:
            problems.append(f"line {number}: does not follow the line before it (removed or reordered)")
        prev = last_hash = str(entry.get("hash"))
        if isinstance(entry.get("seq"), int):
            hashes[entry["seq"]] = last_hash
        expected_seq = int(entry.get("seq", expected_seq)) + 1
    head = _head_path(path)
    if head.exists():
        recorded = json.loads(head.read_text())
        # one entry behind is a message logged, sent, and the process stopped before the head followed it
        behind = recorded.get("seq") == expected_seq - 2 and hashes.get(expected_seq - 2) == recorded.get("hash")
        if not behind and (recorded.get("hash") != last_hash or recorded.get("seq") != expected_seq - 1):
            problems.append(
                f"the log ends at seq {expected_seq - 1}, but {head.name} records seq {recorded.get('seq')} "
                "(lines removed from the end)"
            )
    return problems

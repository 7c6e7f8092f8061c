"""Write-behind: a run's file and store writes done in order on one background thread, off the round's path.

Writes run in the order they were handed over, so a later write (the "round finished" mark) never reaches the
disk before an earlier one (that round's model): a process killed with writes still queued leaves the files of
an earlier finished round, never a mark without its model. A write that fails transiently (``TransientError``:
a locked database, a server out of reach) is tried again, as Prefect retries a step, before it counts as failed.
After one write fails, the later ones are skipped (no mark after a missing model) and the failure is raised to
the caller at its next hand-over or ``flush``.

``hold`` keeps the writes handed over after it in memory, in order, until ``release`` (or ``flush``) queues them:
a round's checkpoint waits while the coordinator evaluates the round, so that the two do not compete for the
interpreter on the round's path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from components.core.errors import TransientError

log = logging.getLogger(__name__)
ATTEMPTS = 3  # a transient failure is tried again twice, after 1 s then 2 s


class WriteBehind:
    """An ordered queue of writes on one thread (started at the first write)."""

    def __init__(self, name: str = "write-behind") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._failure: BaseException | None = None
        self._held: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None  # writes kept back by ``hold``

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Queue ``write(*args)`` after every write queued before it; raises an earlier write's failure."""
        with self._lock:
            self._raise_failure()
            if self._held is not None:
                self._held.append((write, args))
                return
            self._queue(write, args)

    def _queue(self, write: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._executor.submit(self._run, write, args))

    def hold(self) -> None:
        """Keep the writes handed over from now on until ``release`` (they still run in the order handed over)."""
        with self._lock:
            if self._held is None:
                self._held = []

    def release(self) -> None:
        """Queue every write kept back since ``hold``, in order; later writes are queued at once again."""
        with self._lock:
            held, self._held = self._held, None
            for write, args in held or ():
                self._queue(write, args)

    def _run(self, write: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._failure is not None:
            return  # nothing after a failed write: a later "finished" mark would point at a missing file
        for attempt in range(1, ATTEMPTS + 1):
            try:
                write(*args)
                return
            except TransientError as error:
                if attempt == ATTEMPTS:
                    self._failure = error
                    raise
                log.warning("%s: %s (attempt %d of %d); trying again", self._name, error, attempt, ATTEMPTS)
                time.sleep(attempt)
            except BaseException as error:
                self._failure = error
                raise

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def flush(self) -> None:
        """Release what is held, then wait until every queued write is done; raises the first failure."""
        self.release()
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.exception()  # wait; the failure itself is kept in self._failure
        with self._lock:
            self._raise_failure()

    def close(self) -> None:
        """Flush, then stop the thread (also when the flush raises)."""
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

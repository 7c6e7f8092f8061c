"""Peak resident memory of process trees, sampled while they run.

A coordinator or party may be several processes (Flower's SuperLink starts its ServerApp in a
child process, a SuperNode one ClientApp process per message): a tree's memory is the sum of the
resident set sizes of the process and all its descendants at one sample; its peak is the largest
such sum seen.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

INTERVAL_S = 0.2


def tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in members:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading
    return total


class PeakMemory:
    """``with PeakMemory() as peaks: peaks.watch("coordinator", pid)``; then ``peaks.peak_mb(name)``."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._roots: dict[str, psutil.Process] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="peak-memory", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._roots[name] = psutil.Process(pid)
            self._peaks.setdefault(name, 0)
        self._sample(name)

    def peak_mb(self, name: str) -> float:
        with self._lock:
            return self._peaks[name] / 2**20

    def _sample(self, name: str) -> None:
        size = tree_rss(self._roots[name])
        with self._lock:
            self._peaks[name] = max(self._peaks[name], size)

    def _sample_until_stopped(self) -> None:
        while not self._stopped.wait(self.interval_s):
            with self._lock:
                names = list(self._roots)
            for name in names:
                self._sample(name)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

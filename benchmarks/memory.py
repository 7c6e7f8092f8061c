"""Peak resident memory of process trees, sampled while they run.

A coordinator or party may be several processes (Flower's SuperLink starts its ServerApp in a
child process, a SuperNode one ClientApp process per message): a tree's memory is the sum of the
resident set sizes of the process and all its descendants at one sample; its peak is the largest
such sum seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

import psutil

Aside = Callable[[psutil.Process], bool]  # True for a process whose subtree is counted under another name

INTERVAL_S = 0.2


def tree_rss(root: psutil.Process, aside: Aside | None = None) -> tuple[int, int]:
    """Resident bytes of ``root``'s tree: (the tree less the subtrees ``aside`` picks, those subtrees)."""
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    set_aside: set[int] = set()
    for process in members if aside is not None else []:
        if process.pid not in set_aside and aside(process):
            try:
                set_aside |= {process.pid, *(child.pid for child in process.children(recursive=True))}
            except psutil.Error:
                set_aside.add(process.pid)
    totals = [0, 0]
    for process in members:
        try:
            totals[process.pid in set_aside] += process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading
    return totals[0], totals[1]


class PeakMemory:
    """``with PeakMemory() as peaks: peaks.watch("coordinator", pid)``; then ``peaks.peak_mb(name)``.

    ``watch(name, pid, aside=(pick, other))`` counts the subtrees ``pick`` chooses under ``other`` instead
    (e.g. a Prefect server the coordinator started); a name's peak is the largest per-sample sum.
    """

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._roots: dict[str, tuple[psutil.Process, tuple[Aside, str] | None]] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="peak-memory", daemon=True)

    def watch(self, name: str, pid: int, aside: tuple[Aside, str] | None = None) -> None:
        with self._lock:
            self._roots[name] = (psutil.Process(pid), aside)
            self._peaks.setdefault(name, 0)
            if aside is not None:
                self._peaks.setdefault(aside[1], 0)
        self._sample()

    def peak_mb(self, name: str) -> float:
        with self._lock:
            return self._peaks.get(name, 0) / 2**20

    def _sample(self) -> None:
        with self._lock:
            roots = dict(self._roots)
        sums: dict[str, int] = {}
        for name, (root, aside) in roots.items():
            own, other = tree_rss(root, aside[0] if aside else None)
            sums[name] = sums.get(name, 0) + own
            if aside is not None:
                sums[aside[1]] = sums.get(aside[1], 0) + other
        with self._lock:
            for name, size in sums.items():
                self._peaks[name] = max(self._peaks.get(name, 0), size)

    def _sample_until_stopped(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

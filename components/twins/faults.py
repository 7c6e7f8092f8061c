"""Fault injection shared by the twins: ``fail_next(method, error)`` makes the next call of ``method`` raise."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

_Method = TypeVar("_Method", bound=Callable[..., Any])


class FaultInjection:
    """Queued failures per method name, and the name of every public call in order (``calls``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._faults: dict[str, list[BaseException | type[BaseException]]] = {}

    def fail_next(self, method: str, error: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error`` before doing anything; later calls work."""
        target = getattr(type(self), method, None)
        if method.startswith("_") or not getattr(target, "_injectable", False):
            raise ValueError(f"{type(self).__name__} has no public method {method!r} to fail")
        if not (isinstance(error, BaseException) or (isinstance(error, type) and issubclass(error, BaseException))):
            raise TypeError(f"fail_next needs an exception, got {error!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._faults.setdefault(method, []).extend([error] * times)

    def pending_faults(self) -> dict[str, int]:
        """How many injected failures each method still has queued."""
        return {name: len(queue) for name, queue in self._faults.items() if queue}

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        queue = self._faults.get(method)
        if queue:
            raise queue.pop(0)


def injectable(method: _Method) -> _Method:
    """Record the call in ``calls`` and raise a failure queued by ``fail_next`` first; keeps the signature."""

    @functools.wraps(method)
    def guarded(self: FaultInjection, *args: Any, **kwargs: Any) -> Any:
        self._enter(method.__name__)
        return method(self, *args, **kwargs)

    guarded._injectable = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]

"""In-memory twins of the edges in ``components.core.ports``, for tests and dry runs.

Each twin implements its port with the adapter's method names and signatures, keeps what it was given in
plain dicts and lists for a test to assert on, and raises Consortia's errors where the adapter would. Every
twin can be told to fail: ``twin.fail_next("method", EdgeUnavailable("store", "locked"))`` makes the next
call of that method raise (``times=`` for more), so a test can drive a retry; ``twin.calls`` lists the
calls in order. Twins import only ``components.core``, numpy, pandas and pydantic.
"""

from components.twins.contracts import validate_with_schema
from components.twins.faults import FaultInjection
from components.twins.store import MemoryStore
from components.twins.tracking import LoggedModel, MemoryRegistry, MemoryTracker, TrackedRun
from components.twins.versioning import MemoryMetadata

__all__ = [
    "FaultInjection",
    "LoggedModel",
    "MemoryMetadata",
    "MemoryRegistry",
    "MemoryStore",
    "MemoryTracker",
    "TrackedRun",
    "validate_with_schema",
]

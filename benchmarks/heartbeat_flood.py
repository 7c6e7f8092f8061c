"""A heartbeat flood from one admitted party during a live run: do honest rounds take longer?

``python -m benchmarks.heartbeat_flood [--flood N] [--rounds R] [--pairs P]``: P pairs of runs, side by side,
each pair a reference run and a run during which ``mallory`` (an admitted key that never says hello) sends N
heartbeats as fast as its connection takes them, unpaced, from its own process. Real ZeroMQ with CURVE on
127.0.0.1, real party agents (``party-agent run`` processes), the real federation store (SQLite); tracker, registry
and metadata are twins. Prints each round's seconds and the flooded/reference ratio, and writes
``benchmarks/results/heartbeat_flood.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from components.adapters.store import FederationStore
from components.adapters.transport import DealerEndpoint, KeyPair, RouterEndpoint, new_keypair, read_keypair
from components.adapters.workspace import Workspace
from components.core.config import FederationConfig, load_federation_config
from components.core.protocol import Envelope, Kind, encode
from components.core.protocol.bodies import Heartbeat
from components.run.edges import RunEdges
from components.run.federation import FederationRun
from components.run.summary import RoundRow
from components.twins.tracking import MemoryRegistry, MemoryTracker
from components.twins.versioning import MemoryMetadata
from flows.demo import prepare_demo
from flows.federation import PLAIN_STEPS, drive
from flows.processes import PartyProcesses

FLOODER = "mallory"
RESULTS = Path(__file__).resolve().parent / "results" / "heartbeat_flood.json"


class CountingStore:
    """The real store, counting the calls that name each party (to show a flood never reaches it)."""

    def __init__(self, store: FederationStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], str):
                self.calls[args[0]] += 1
            return method(*args, **kwargs)

        return counted


def flood(address: str, server_public: str, keys: KeyPair, count: int, go: Any, done: Any) -> None:
    """Once ``go`` is set, send ``count`` heartbeats as fast as the connection takes them; read nothing."""
    frames = encode(Envelope(kind=Kind.HEARTBEAT, sender=FLOODER, body=Heartbeat().model_dump()))
    go.wait()
    endpoint = DealerEndpoint(address, server_public, keys, linger_ms=0, send_timeout_ms=60_000)
    for _ in range(count):
        endpoint.send(frames)
    done.set()
    time.sleep(5)  # keep the connection open while the coordinator reads the rest (a reset would discard it)
    endpoint.close()


@dataclass
class FloodRun:
    round_seconds: list[float]
    participants: list[list[str]]
    flood_seconds: float | None = None
    dropped: int = 0
    disconnected: bool = False
    store_calls_for_flooder: int = 0
    flooder_refusals: dict[str, int] = field(default_factory=dict)


def run_once(root: Path, rounds: int, flood_messages: int, local_epochs: int = 150, limited: bool = True) -> FloodRun:
    """One federation of 3 honest parties and ``mallory``; the flood starts when round 1 ends (none if 0)."""
    workspace = Workspace.at(root)
    layout = prepare_demo(workspace, parties=3, rounds=rounds, seed=0)
    data = load_federation_config(layout.federation_config).model_dump(mode="json")
    data["training"].update(local_epochs=local_epochs, batch_size=16)
    flooder = new_keypair()
    data["parties"].append({"name": FLOODER, "public_key": flooder.public})
    data.update(min_parties=3, join_timeout_s=12, round_timeout_s=120, heartbeat_timeout_s=30)
    if not limited:  # as before the rate limit: every heartbeat parsed, observed and handed to the store writer
        data["party_rate_limit"] = {"messages_per_s": 1e9, "burst": 10**9, "disconnect_after": 10**9}
    config = FederationConfig.model_validate(data)
    store = CountingStore(FederationStore(workspace.store_url))
    tracker = MemoryTracker()
    edges = RunEdges(RouterEndpoint, tracker, MemoryRegistry(tracker), store, MemoryMetadata())  # type: ignore[arg-type]
    parties = PartyProcesses(layout.party_configs, workspace.logs).__enter__()  # each party its own process
    _wait_until_validated(workspace, list(layout.party_configs))  # then each has queued its hello
    server_public = read_keypair(config.coordinator.secret_key_file).public
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Event()
    flooding: dict[str, Any] = {}
    if flood_messages:  # started (and its imports paid for) before the run: the flood itself begins after round 1
        process = context.Process(
            target=flood, args=(config.coordinator.bind, server_public, flooder, flood_messages, go, done)
        )
        process.start()
        flooding["process"] = process

    def on_round(row: RoundRow) -> None:
        if row.round == 1 and flood_messages:
            flooding["started"] = time.monotonic()
            go.set()

    try:
        run = FederationRun(config, workspace, f"flood-{flood_messages}", edges=edges)
        coordinator = run.coordinator
        drive(run, PLAIN_STEPS, on_round)
    finally:
        parties.__exit__(None, None, None)
    result = FloodRun(
        round_seconds=[r.seconds or 0.0 for r in run.summary.rounds],
        participants=[sorted(r.participants) for r in run.summary.rounds],
        dropped=coordinator.dropped[FLOODER],
        disconnected=FLOODER in coordinator.disconnected,
        store_calls_for_flooder=store.calls[FLOODER],
        flooder_refusals={c: n for (p, c), n in coordinator.rejected_codes.items() if p == FLOODER},
    )
    if flooding:
        go.set()
        done.wait(timeout=120)
        result.flood_seconds = time.monotonic() - flooding["started"]
        flooding["process"].join(timeout=30)
    return result


def _wait_until_validated(workspace: Workspace, names: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    logs = [workspace.logs / f"party-{name}.log" for name in names]
    while not all(log.exists() and "validated against" in log.read_text() for log in logs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"parties did not start within {timeout_s:.0f}s")
        time.sleep(0.5)


def main(argv: Sequence[str] = ()) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heartbeat_flood")
    parser.add_argument("--flood", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=150, help="local epochs: rounds long enough to span the flood")
    options = parser.parse_args(list(argv))
    pairs = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(options.pairs):
            reference = run_once(Path(folder) / f"ref-{index}", options.rounds, 0, options.epochs)
            flooded = run_once(Path(folder) / f"flood-{index}", options.rounds, options.flood, options.epochs)
            unlimited = run_once(
                Path(folder) / f"unlimited-{index}", options.rounds, options.flood, options.epochs, limited=False
            )
            pairs.append({"reference": asdict(reference), "flooded": asdict(flooded), "unlimited": asdict(unlimited)})
    result = summarise(pairs, options.flood)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    table = Table(
        title=f"honest round seconds, median of {options.pairs} runs, {options.flood} heartbeats from one party"
    )
    for column in ("round", "reference s", "flooded s", "ratio", "flooded, no rate limit s", "ratio "):
        table.add_column(column)
    for row in result["rounds"]:
        table.add_row(
            str(row["round"]),
            f"{row['reference_s']:.2f}",
            f"{row['flooded_s']:.2f}",
            f"{row['ratio']:.2f}",
            f"{row['unlimited_s']:.2f}",
            f"{row['unlimited_ratio']:.2f}",
        )
    Console().print(table)
    Console().print(
        f"dropped {result['dropped']}, disconnected {result['disconnected']}, store calls naming the flooder "
        f"{result['store_calls_for_flooder']}, flood lasted {result['flood_seconds']} s; without the rate limit "
        f"{result['unlimited_store_calls_for_flooder']} store calls, flood lasted {result['unlimited_flood_seconds']} s"
    )
    return result


def summarise(pairs: list[dict[str, Any]], flood_messages: int) -> dict[str, Any]:
    """Per round, the median seconds of the reference and the flooded runs and their ratio."""
    rounds = len(pairs[0]["reference"]["round_seconds"])
    rows = []
    for index in range(rounds):
        reference = statistics.median(p["reference"]["round_seconds"][index] for p in pairs)
        flooded = statistics.median(p["flooded"]["round_seconds"][index] for p in pairs)
        unlimited = statistics.median(p["unlimited"]["round_seconds"][index] for p in pairs)
        rows.append(
            {
                "round": index + 1,
                "reference_s": reference,
                "flooded_s": flooded,
                "ratio": flooded / reference,
                "unlimited_s": unlimited,
                "unlimited_ratio": unlimited / reference,
            }
        )
    last = pairs[-1]["flooded"]
    return {
        "flood_messages": flood_messages,
        "rounds": rows,
        "max_ratio": max(r["ratio"] for r in rows),
        "dropped": last["dropped"],
        "disconnected": last["disconnected"],
        "store_calls_for_flooder": last["store_calls_for_flooder"],
        "flood_seconds": last["flood_seconds"],
        "unlimited_flood_seconds": pairs[-1]["unlimited"]["flood_seconds"],
        "unlimited_store_calls_for_flooder": pairs[-1]["unlimited"]["store_calls_for_flooder"],
        "pairs": pairs,
    }


if __name__ == "__main__":
    main(__import__("sys").argv[1:])

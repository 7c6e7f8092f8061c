"""Update throughput through Consortia's protocol against raw pyzmq, on the same sockets and sizes.

One exchange: the coordinator's ROUTER sends a model of S bytes to a party's DEALER (another process),
which sends an update of S bytes back, as in a training round. Throughput = 2 S x exchanges / time.
The payload is a real MLP's tensors (about 10K, 1M, 10M and 50M float32 parameters), one frame each.

Four ways, side by side, interleaved size by size in every run:
- raw pyzmq, plain: the party echoes the frames it received;
- Consortia protocol, plain: the same sockets, but every message is encoded and decoded by
  ``components.core.protocol`` (typed JSON envelope, tensor header, checked frames), the party decoding the
  model and encoding its update;
- raw pyzmq, CURVE: as the first, with CURVE encryption;
- Consortia, CURVE: the real stack: ``Coordinator.exchange`` (its ROUTER endpoint with ZAP
  authentication and I/O thread, reply matching) to a party on ``DealerEndpoint``.
The ratios compare each Consortia way with raw pyzmq at the same encryption.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

import zmq
from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.models import SIZES, filled_params, spec_for
from benchmarks.records import measure_and_record, median
from benchmarks.tables import Goal, TextTable, met
from benchmarks.transport_party import PARTY, Way, respond
from components.adapters.transport import KeyPair, new_keypair
from components.core.params import Params
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import Hello, UpdateReply
from components.run.coordinator import Coordinator

NAME = "transport"
WAYS: tuple[Way, ...] = ("raw", "protocol", "raw-curve", "consortia")
PAIRS: dict[str, tuple[Way, Way]] = {"plain": ("protocol", "raw"), "CURVE": ("consortia", "raw-curve")}
GOAL = 0.7
TARGET_BYTES = 400 << 20  # traffic per measurement, both directions


class TransportSetup(BaseModel):
    sizes: dict[str, int] = Field(default_factory=lambda: dict(SIZES))
    runs: int = 3
    target_bytes: int = TARGET_BYTES  # traffic per measurement, both directions


class Measurement(BaseModel):
    size: str
    way: Way
    run: int
    exchanges: int
    payload_bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return 2 * self.payload_bytes * self.exchanges / self.seconds / 1e6


class Comparison(BaseModel):
    size: str
    payload_bytes: int
    encryption: str
    consortia_mb_s: float
    raw_mb_s: float
    ratio: float
    goal_met: bool


class TransportResult(BaseModel):
    setup: TransportSetup
    measurements: list[Measurement]
    comparisons: list[Comparison]


def exchanges_for(size_bytes: int, target_bytes: int = TARGET_BYTES) -> int:
    return max(3, min(500, target_bytes // (2 * size_bytes)))


# ---- the coordinator side ----
class RawSide:
    """A plain or CURVE ROUTER; ``exchange`` sends frames (raw) or a TRAIN message (protocol) and waits."""

    def __init__(self, way: Way, server: KeyPair) -> None:
        self.way = way
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        if way == "raw-curve":
            self.router.curve_server = True
            self.router.curve_secretkey = server.secret.encode()
            self.router.curve_publickey = server.public.encode()
        self.router.linger = 0
        self.router.bind("tcp://127.0.0.1:*")
        self.address: str = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer = b""

    def connected(self) -> None:
        self.peer, _ = self.router.recv_multipart()

    def exchange(self, tensors: Params) -> None:
        if self.way == "protocol":
            envelope = Envelope(kind=Kind.TRAIN, run_id="bench", round=1, sender="coordinator")
            self.router.send_multipart([self.peer, *encode(envelope, tensors)], copy=False)
            reply, _ = decode(self.router.recv_multipart(copy=False)[1:])
            if reply.kind != Kind.UPDATE:
                raise RuntimeError(f"expected an update, got {reply.kind}")
        else:
            self.router.send_multipart([self.peer, *(memoryview(a).cast("B") for a in tensors.values())], copy=False)
            self.router.recv_multipart(copy=False)

    def close(self) -> None:
        self.router.send_multipart([self.peer, b"stop"])
        self.router.close()
        self.context.term()


class ConsortiaSide:
    """The real coordinator: ``Coordinator.exchange`` of a TRAIN request for an UPDATE."""

    def __init__(self, server: KeyPair, party: KeyPair) -> None:
        self.coordinator = Coordinator(bind="tcp://127.0.0.1:*", keys=server, party_keys={party.public: PARTY})
        self.address = self.coordinator.endpoint

    def connected(self) -> None:
        if not self.coordinator.wait_for_parties([PARTY], 1, timeout_s=60, wait_for_all=True):
            raise RuntimeError("the benchmark party did not connect")

    def exchange(self, tensors: Params) -> None:
        result = self.coordinator.exchange([PARTY], Kind.TRAIN, "bench", 1, {}, tensors=tensors, timeout_s=600)
        if PARTY not in result.replies:
            raise RuntimeError(f"no update: {result.errors or 'timeout'}")

    def close(self) -> None:
        self.coordinator.broadcast(Kind.SHUTDOWN, "bench")
        time.sleep(0.2)
        self.coordinator.close()


Side = RawSide | ConsortiaSide


def open_ways(ways: Sequence[Way]) -> tuple[dict[Way, Side], list[BaseProcess]]:
    """A coordinator side per way and its party process, connected (the processes start together)."""
    spawn = multiprocessing.get_context("spawn")
    hello, update = Hello(manifest={}).model_dump(), UpdateReply(num_examples=1).model_dump()
    sides: dict[Way, Side] = {}
    processes = []
    for way in ways:
        server, party = new_keypair(), new_keypair()
        side: Side = ConsortiaSide(server, party) if way == "consortia" else RawSide(way, server)
        process = spawn.Process(
            target=respond, args=(way, side.address, server.public, party, hello, update), daemon=True
        )
        process.start()
        sides[way], processes = side, [*processes, process]
    for side in sides.values():
        side.connected()
    return sides, processes


def measure(side: Side, tensors: Params, exchanges: int) -> float:
    side.exchange(tensors)  # warm-up: first buffers, first CURVE nonces
    started = time.perf_counter()
    for _ in range(exchanges):
        side.exchange(tensors)
    return time.perf_counter() - started


def run(setup: TransportSetup, console: Console) -> TransportResult:
    measurements: list[Measurement] = []
    payloads = {size: filled_params(spec_for(parameters)) for size, parameters in setup.sizes.items()}
    for run_index in range(setup.runs):
        sides, processes = open_ways(WAYS)
        try:
            for size, tensors in payloads.items():
                size_bytes = sum(a.nbytes for a in tensors.values())
                exchanges = exchanges_for(size_bytes, setup.target_bytes)
                for way in WAYS:
                    seconds = measure(sides[way], tensors, exchanges)
                    measurements.append(
                        Measurement(
                            size=size,
                            way=way,
                            run=run_index,
                            exchanges=exchanges,
                            payload_bytes=size_bytes,
                            seconds=seconds,
                        )
                    )
                    console.print(f"  run {run_index + 1} {size} {way}: {measurements[-1].mb_per_s:,.0f} MB/s")
        finally:
            for side in sides.values():
                side.close()
            for process in processes:
                process.join(timeout=10)
    return TransportResult(setup=setup, measurements=measurements, comparisons=compare(setup, measurements))


def compare(setup: TransportSetup, measurements: list[Measurement]) -> list[Comparison]:
    comparisons = []
    for size in setup.sizes:
        for encryption, (ours, raw) in PAIRS.items():

            def throughput(way: Way, size: str = size) -> float:
                return median([m.mb_per_s for m in measurements if m.size == size and m.way == way])

            first = next(m for m in measurements if m.size == size)
            ratio = throughput(ours) / throughput(raw)
            comparisons.append(
                Comparison(
                    size=size,
                    payload_bytes=first.payload_bytes,
                    encryption=encryption,
                    consortia_mb_s=throughput(ours),
                    raw_mb_s=throughput(raw),
                    ratio=ratio,
                    goal_met=ratio >= GOAL,
                )
            )
    return comparisons


def tables(result: TransportResult) -> list[TextTable]:
    table = TextTable(
        f"Update throughput, Consortia vs raw pyzmq (ROUTER/DEALER over TCP on 127.0.0.1), "
        f"medians of {result.setup.runs} runs",
        ["model", "update size", "encryption", "Consortia (MB/s)", "raw pyzmq (MB/s)", "ratio", "goal (>= 70%)"],
    )
    for c in result.comparisons:
        table.add(
            c.size,
            _size(c.payload_bytes),
            c.encryption,
            f"{c.consortia_mb_s:,.0f}",
            f"{c.raw_mb_s:,.0f}",
            f"{c.ratio:.0%}",
            met(c.goal_met),
        )
    table.notes += [
        "plain: Consortia's codec (typed envelope, tensor header, decode checks) on both sides of plain sockets; "
        "CURVE: the full stack (Coordinator.exchange, ZAP-authenticated ROUTER endpoint with its I/O thread, "
        "DealerEndpoint) against raw CURVE sockets.",
        "MB/s counts the tensor bytes of the model sent and the update returned (10^6 bytes).",
    ]
    return [table]


def goals(result: TransportResult) -> list[Goal]:
    measured = ", ".join(f"{c.size} {c.encryption} {c.ratio:.0%}" for c in result.comparisons)
    verdicts = {c.goal_met for c in result.comparisons}
    verdict = met(True) if verdicts == {True} else met(False) if verdicts == {False} else "met at some sizes"
    return [Goal("Protocol throughput at least 70% of raw pyzmq", measured, verdict)]


def _size(size_bytes: int) -> str:
    exponent = min(int(math.log(size_bytes, 1000)), 3) if size_bytes > 0 else 0
    return f"{size_bytes / 1000**exponent:.0f} {['B', 'kB', 'MB', 'GB'][exponent]}"


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks transport", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10K and 1M, one run; prints, writes no result")
    args = parser.parse_args(arguments)
    console = Console()
    setup = TransportSetup(sizes={"10K": SIZES["10K"], "1M": SIZES["1M"]}, runs=1) if args.quick else TransportSetup()
    return measure_and_record(NAME, arguments, lambda: run(setup, console), tables, console, args.quick)

"""Many party agents in one process for ``consortia simulate``: the real ``PartyAgent``, light.

Every agent is a distinct party (its own rows, key pair and CURVE connection, admitted by its public key like
any party), but the agents of one process share what a process per party would repeat: one DEALER pool (one
zmq context and one poll for all their sockets), one worker thread for local work (one import of torch), and
one contract check: the simulation validated the generated rows once, as a whole, with Great Expectations,
and each party's validation cache holds that summary with its own row count. No wire capture, no audit log,
a heartbeat every ``HEARTBEAT_S``.

``python -m party_agent.simulation ASSIGNMENT.json`` runs the parties an assignment lists until SIGTERM.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from components.adapters.checkpoints import write_text_atomically
from components.adapters.transport import DealerPool, PooledDealer
from components.core.errors import EdgeFailure, EdgeUnavailable
from components.core.simulation import Assignment
from party_agent.agent import PartyAgent
from party_agent.config import load_party_config

log = logging.getLogger("party_agent.simulation")
TICK_S = 0.02  # the longest an idle poll waits: finished jobs and heartbeats are looked at this often
HEARTBEAT_S = 5.0  # heartbeats every 5 s at least apart: a thousand parties beating every second is a load test


class SimulatedParties:
    """The agents of one assignment, driven from one thread: ``run`` until ``stop``."""

    def __init__(self, assignment: Assignment) -> None:
        self.pool = DealerPool()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulated-work")
        self.agents: list[PartyAgent] = []
        for path in assignment.party_configs:
            config = load_party_config(path)
            beat = max(config.heartbeat_interval_s, HEARTBEAT_S)
            config = config.model_copy(update={"wire_log": None, "audit_log": None, "heartbeat_interval_s": beat})
            agent = PartyAgent(config, dealer=self.pool.open, worker=self.worker)
            cached = agent.cached_validation()
            if cached is not None:  # the shared check, with this party's own row count
                signed = assignment.validation.model_copy(update={"row_count": len(agent.frame)})
                cached.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomically(cached, signed.model_dump_json())
            self.agents.append(agent)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        endpoints: dict[int, tuple[PartyAgent, PooledDealer]] = {}
        for agent in self.agents:
            endpoint = self.pool.open(agent.config.coordinator, agent.config.coordinator_public_key, agent.keys)
            agent.join(endpoint)
            endpoints[id(endpoint)] = (agent, endpoint)
        log.info("%d simulated parties joined", len(endpoints))
        try:
            while not self._stop.is_set():
                for ready in self.pool.ready(TICK_S):
                    agent, endpoint = endpoints[id(ready)]
                    while (frames := endpoint.receive(0)) is not None:
                        _serve(agent, endpoint, frames)
                for agent, endpoint in endpoints.values():
                    _serve(agent, endpoint, None)
        finally:
            for agent, endpoint in endpoints.values():
                with contextlib.suppress(EdgeUnavailable, EdgeFailure):  # the coordinator may be gone already
                    agent.leave(endpoint)
            self.worker.shutdown(wait=False, cancel_futures=True)
            self.pool.close()


def _serve(agent: PartyAgent, endpoint: PooledDealer, frames: list[Any] | None) -> None:
    """One agent's turn; a connection that cannot send now costs that agent its message, not the others a wait."""
    try:
        agent.serve(endpoint, frames)
    except EdgeUnavailable as error:
        log.warning("%s: %s", agent.config.name, error)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    assignment = Assignment.model_validate(json.loads(Path(argv[0]).read_text()))
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    parties = SimulatedParties(assignment)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: parties.stop())
    parties.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

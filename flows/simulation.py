"""``consortia simulate``: one federation run with N simulated parties on this machine, measured.

The coordinator is the one ``consortia run`` uses (the same flow, stores and CURVE transport on 127.0.0.1); the
parties are real ``PartyAgent``s, a few hundred per process (``party_agent/simulation.py``), each with its own
key pair and its own partition of rows generated from the breast-cancer contract. Each round is measured at the
coordinator: seconds, peak memory (RSS of this process) and messages per second through its ROUTER.
"""

from __future__ import annotations

import faulthandler
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import psutil
from pydantic import BaseModel

from components.adapters.contracts import load_contract, validate_dataset
from components.adapters.transport import RouterEndpoint
from components.adapters.workspace import Workspace
from components.core.config import FederationConfig, dump_yaml, load_federation_config
from components.core.simulation import Assignment
from components.run.edges import workspace_edges
from components.run.summary import RoundRow, RunSummary
from flows.demo import dataset_frame, prepare_demo
from flows.processes import stop_process_groups

ModelSize = Literal["10k", "1m"]
HIDDEN: dict[ModelSize, list[int]] = {"10k": [300], "1m": [1000, 1000]}  # MLPs over the 30 contract features
CONTRACT = "breast_cancer"
PARTIES_PER_PROCESS = 250
MAX_PROCESSES = 4
SAMPLE_EVERY_S = 0.02


def generated_rows(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of the breast-cancer contract: real rows drawn with replacement, each feature jittered by a
    tenth of its spread and kept inside the range the real rows span (so they pass the contract)."""
    real = dataset_frame(CONTRACT)
    contract = load_contract(CONTRACT)
    rng = np.random.default_rng(seed)
    drawn = real.iloc[rng.integers(len(real), size=rows)].reset_index(drop=True)
    features = drawn[contract.features].to_numpy()
    low, high = real[contract.features].min().to_numpy(), real[contract.features].max().to_numpy()
    jittered = np.clip(
        features + rng.normal(scale=0.1 * real[contract.features].std().to_numpy(), size=features.shape), low, high
    )
    frame = pd.DataFrame(jittered, columns=contract.features)
    frame[contract.target] = drawn[contract.target].to_numpy()
    return frame


@dataclass(frozen=True)
class Simulation:
    config_path: Path
    assignments: list[Path]
    parties: int
    parameters: int


def prepare_simulation(
    workspace: Workspace,
    parties: int,
    rounds: int,
    model: ModelSize = "10k",
    rows_per_party: int = 20,
    processes: int | None = None,
    seed: int = 0,
) -> Simulation:
    """Rows, keys and configs for ``parties`` parties (the demo's layout), a run config that keeps no per-party
    updates (``party_updates: none``: FedAvg streams), and one assignment per simulation process."""
    contract = load_contract(CONTRACT)
    frame = generated_rows(math.ceil(parties * rows_per_party / 0.8), seed)  # the demo holds 20% out
    layout = prepare_demo(
        workspace, parties=parties, rounds=rounds, seed=seed, hidden=tuple(HIDDEN[model]), frame=frame
    )
    data = load_federation_config(layout.federation_config).model_dump(mode="json")
    data.update(
        {
            "min_parties": parties,
            "party_updates": "none",
            "heartbeat_timeout_s": 120,
            "join_timeout_s": 120 + parties * 0.2,
            "round_timeout_s": 120 + parties * 0.5,
        }
    )
    data["training"].update({"local_epochs": 1, "batch_size": 32})
    config = FederationConfig.model_validate(data)
    config_path = dump_yaml(config, layout.federation_config)
    summary = validate_dataset(layout.train_frame, contract)  # the generated rows, checked once as a whole
    count = processes or min(MAX_PROCESSES, math.ceil(parties / PARTIES_PER_PROCESS))
    names = list(layout.party_configs)
    assignments = []
    for index in range(count):
        assignment = Assignment(
            party_configs=[layout.party_configs[n] for n in names[index::count]], validation=summary
        )
        path = workspace.root / "simulation" / f"assignment-{index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(assignment.model_dump_json())
        assignments.append(path)
    from components.ml.model import parameter_layout
    from components.run.federation import model_spec

    layout_ = parameter_layout(model_spec(config.model, contract))
    parameters = int(sum(np.prod(shape) for shape, _ in layout_.values()))
    return Simulation(config_path, assignments, parties, parameters)


class SimulatedProcesses:
    """``with SimulatedProcesses(simulation, logs):`` runs one ``party_agent.simulation`` process per assignment."""

    def __init__(self, simulation: Simulation, log_dir: Path) -> None:
        self.simulation = simulation
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> SimulatedProcesses:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # a few processes share the cores
        for index, assignment in enumerate(self.simulation.assignments):
            with (self.log_dir / f"simulated-parties-{index}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "party_agent.simulation", str(assignment)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        env=env,
                    )
                )
        return self

    def dead(self) -> list[int]:
        return [p.returncode for p in self.processes if p.poll() is not None]

    def __exit__(self, *_: object) -> None:
        stop_process_groups(self.processes)


class RoundMeasure(BaseModel):
    round: int
    participants: int
    seconds: float  # the round as the run records it (training and evaluation)
    window_s: float  # from the end of the previous round to the end of this one, as measured here
    peak_rss_mb: float  # the coordinator process's largest RSS within the window
    messages_in: int
    messages_out: int

    @property
    def messages_per_s(self) -> float:
        return (self.messages_in + self.messages_out) / self.window_s if self.window_s > 0 else 0.0


class SimulationReport(BaseModel):
    parties: int
    parameters: int
    run_id: str
    status: str
    rounds: list[RoundMeasure]
    rss_at_first_round_mb: float  # before round 2 the run has loaded everything it needs
    max_rss_mb: float  # the process's high-water mark over the whole run (getrusage)
    final_accuracy: float | None = None


@dataclass
class _Meter:
    """Samples this process's RSS and reads the ROUTER's message counters at each round's end."""

    routers: list[RouterEndpoint] = field(default_factory=list)
    rounds: list[RoundMeasure] = field(default_factory=list)
    _peak: float = 0.0
    _mark: tuple[float, int, int] = (0.0, 0, 0)
    _first_round_rss: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def router(self, *args: Any, **kwargs: Any) -> RouterEndpoint:
        endpoint = RouterEndpoint(*args, **kwargs)
        self.routers.append(endpoint)
        return endpoint

    def counts(self) -> tuple[int, int]:
        return sum(r.received for r in self.routers), sum(r.sent for r in self.routers)

    def sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._peak = max(self._peak, process.memory_info().rss / 2**20)

    def on_round(self, row: RoundRow) -> None:
        now, (received, sent) = time.monotonic(), self.counts()
        started, received_before, sent_before = self._mark
        if started:
            self.rounds.append(
                RoundMeasure(
                    round=row.round,
                    participants=len(row.participants),
                    seconds=row.seconds,
                    window_s=now - started,
                    peak_rss_mb=self._peak,
                    messages_in=received - received_before,
                    messages_out=sent - sent_before,
                )
            )
        else:
            self._first_round_rss = psutil.Process().memory_info().rss / 2**20
        self._mark = (now, received, sent)
        self._peak = psutil.Process().memory_info().rss / 2**20


def simulate(
    workspace: Workspace,
    simulation: Simulation,
    run_id: str,
    on_round: Callable[[RoundRow, RoundMeasure | None], None] | None = None,
) -> SimulationReport:
    """Run the federation flow in this process against the simulated parties; rounds after the first are
    measured (the first also carries the start-up)."""
    workspace.activate()
    from flows.federation import run_federation  # imports prefect: only after PREFECT_HOME is set

    stacks = (workspace.logs / "coordinator-stacks.log").open("a")
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)  # `kill -USR1 PID`: where is it?
    meter = _Meter()
    sampler = threading.Thread(target=meter.sample, name="rss-sampler", daemon=True)
    sampler.start()
    config = load_federation_config(simulation.config_path)
    edges = replace(workspace_edges(workspace, config.name), router=meter.router)

    def round_done(row: RoundRow) -> None:
        meter.on_round(row)
        if on_round is not None:
            on_round(row, meter.rounds[-1] if meter.rounds and meter.rounds[-1].round == row.round else None)

    try:
        with SimulatedProcesses(simulation, workspace.logs):
            path = run_federation(simulation.config_path, workspace.root, run_id, round_done, edges)
    finally:
        meter._stop.set()
        faulthandler.unregister(signal.SIGUSR1)
        stacks.close()
    summary = RunSummary.read(path)
    return SimulationReport(
        parties=simulation.parties,
        parameters=simulation.parameters,
        run_id=run_id,
        status=summary.status,
        rounds=meter.rounds,
        rss_at_first_round_mb=meter._first_round_rss,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        final_accuracy=summary.final_metrics.accuracy if summary.final_metrics else None,
    )

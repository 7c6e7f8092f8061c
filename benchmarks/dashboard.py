"""How long each dashboard page takes to render on a workspace with many runs.

Run with ``python -m benchmarks.dashboard``. Builds a synthetic workspace (50 runs of 20 rounds, 5 parties
by default) through the real writers (``FederationStore``, ``RunSummary.write``, ``ModelRegistry``), then
renders every page with Streamlit's ``AppTest``: once first (the process has already imported MLflow and
torch while building the workspace), then ``--repeats`` times with the data caches cleared before each
render (what a refresh costs once the short cache TTL has expired) and ``--repeats`` times cached.
A fresh dashboard server pays one more cost on its first page: importing the registry's libraries,
measured in a separate process.

Prints a table of median seconds per page and writes ``benchmarks/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from components.adapters.store import FederationStore
from components.adapters.tracking import ModelRegistry
from components.adapters.workspace import Workspace
from components.core.reputation import ReputationInputs, update_reputation
from components.run.summary import ModelReward, Promotion, RoundMetrics, RoundRow, RunSummary

RESULTS = Path(__file__).parent / "results" / "dashboard.json"
DASHBOARD = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"
PAGES = ["overview", "run", "parties", "contributions", "catalog", "models"]
MODEL_NAME = "consortia-synthetic"


def synthetic_workspace(
    root: Path, runs: int = 50, rounds: int = 20, parties: int = 5, seed: int = 0, dp: bool = True
) -> Workspace:
    """A workspace as if ``runs`` finished runs of ``rounds`` rounds had happened, written by the real writers.

    Every third round one party misses the round and another's message is refused; rewards split a pool
    of 100; with ``dp`` epsilon grows each round; every run registers a version, better ones are promoted.
    """
    workspace = Workspace.at(root).create()
    store = FederationStore(workspace.store_url)
    registry = ModelRegistry(workspace.tracking_uri)
    rng = np.random.default_rng(seed)
    names = [f"party-{i}" for i in range(parties)]
    now = datetime.now(UTC)
    for name in names:
        store.upsert_party(name, "k" * 40, reputation=0.5)
        store.mark_party(name, "online", {"cores": 4, "memory_mb": 8192.0, "cpu_percent": 20.0})
    reputation: dict[str, float] = {}
    champion = 0.0
    for index in range(runs):
        run_id = f"synthetic-{index:03d}"
        started = now - timedelta(hours=runs - index)
        config = {
            "name": "synthetic",
            "rounds": rounds,
            "parties": [{"name": n} for n in names],
            "promotion": {"model_name": MODEL_NAME, "alias": "champion"},
        }
        store.start_run(run_id, "synthetic", config)
        rows = [_round(number, rounds, names, rng, dp) for number in range(1, rounds + 1)]
        for row in rows:
            store.record_round(run_id, row.model_dump())
        per_round = {row.round: {p: float(rng.normal(0.01, 0.01)) for p in row.participants} for row in rows}
        totals = {p: sum(values.get(p, 0.0) for values in per_round.values()) for p in names}
        for number, values in per_round.items():
            store.record_contributions(run_id, number, values, "tmc_shapley")
        positive = {p: max(v, 0.0) for p, v in totals.items()}
        rewards = {p: 100 * v / sum(positive.values()) for p, v in positive.items()}
        store.record_contributions(run_id, 0, totals, "tmc_shapley", rewards)
        for party in names:
            answered = sum(party in row.participants for row in rows)
            inputs = ReputationInputs(
                rounds_answered=answered,
                rounds_missed=rounds - answered,
                rejected_messages=0,
                contribution_share=positive[party] / sum(positive.values()),
                parties=parties,
            )
            reputation[party] = update_reputation(store.reputation_of(party), inputs)
            store.record_reputation(run_id, party, reputation[party], inputs.model_dump())
        manifests = {p: f"{rng.integers(16**8):08x}{index:024x}" for p in names}
        validation = {p: _validation(p, 100 + i) for i, p in enumerate(names)}
        for party in names:
            manifest = {
                "party": party,
                "content_hash": manifests[party] * 2,
                "rows": validation[party]["row_count"],
                "columns": {"x": "float64", "y": "int64"},
                "contract": "synthetic",
                "contract_version": 1,
            }
            store.record_validation(run_id, party, True, validation[party], manifest)
        final = rows[-1].metrics
        promote = final.accuracy > champion
        version = registry.register(
            str(workspace.root / "models" / run_id),
            MODEL_NAME,
            tags={"metric.accuracy": f"{final.accuracy:.6f}", "consortia.run_id": run_id}
            | {f"manifest.{p}": h for p, h in manifests.items()},
        )
        if promote:
            registry.set_alias(MODEL_NAME, "champion", version)
            champion = final.accuracy
        summary = RunSummary(
            run_id=run_id,
            status="completed",
            started_at=started.isoformat(),
            finished_at=(started + timedelta(seconds=sum(r.seconds for r in rows))).isoformat(),
            config=config,
            validation=validation,
            rounds=rows,
            final_metrics=final,
            contributions=totals,
            round_contributions=per_round,
            valuation_method="tmc_shapley",
            rewards=rewards,
            model_rewards={p: ModelReward(sources=names, accuracy=final.accuracy) for p in names},
            reputation=dict(reputation),
            promotion=Promotion(
                decision="promoted" if promote else "kept",
                reason="synthetic",
                model_name=MODEL_NAME,
                version=version,
                candidate_value=final.accuracy,
            ),
            manifests=manifests,
        )
        path = summary.write(workspace.summary_path(run_id))
        store.finish_run(run_id, "completed", None, str(path))
    return workspace


def _round(number: int, rounds: int, names: list[str], rng: np.random.Generator, dp: bool) -> RoundRow:
    missing = names[number % len(names)] if number % 3 == 0 else None
    participants = [p for p in names if p != missing]
    accuracy = 0.6 + 0.35 * number / rounds + float(rng.normal(0, 0.01))
    return RoundRow(
        round=number,
        participants=participants,
        metrics=RoundMetrics(accuracy=accuracy, roc_auc=min(1.0, accuracy + 0.03), loss=1.0 - accuracy),
        party_metrics={p: {"train_loss": 1.1 - accuracy + float(rng.normal(0, 0.02))} for p in participants},
        rejected={missing: "no reply before deadline"} if missing else {},
        bytes_up=10_000 * len(participants),
        bytes_down=10_400 * len(names),
        seconds=float(rng.uniform(0.5, 2.0)),
        epsilon=0.3 * number if dp else None,
    )


def _validation(party: str, rows: int) -> dict[str, object]:
    outcomes = [{"expectation": "expect_column_to_exist", "column": c, "success": True} for c in ("x", "y")]
    return {"contract": "synthetic", "version": 1, "success": True, "row_count": rows, "outcomes": outcomes}


class PageTiming(BaseModel):
    page: str
    cold_s: float
    uncached_s: list[float]
    cached_s: list[float]

    @property
    def uncached_median(self) -> float:
        return statistics.median(self.uncached_s)

    @property
    def cached_median(self) -> float:
        return statistics.median(self.cached_s)


class DashboardBenchmark(BaseModel):
    runs: int
    rounds: int
    parties: int
    repeats: int
    build_s: float
    registry_import_s: float
    pages: list[PageTiming]
    slowest_uncached_median_s: float


def render_seconds(workspace: Workspace, page: str, clear_caches: bool) -> float:
    """Seconds to render one page (the entry script included) in a fresh AppTest session.

    The session's first run (the landing page) is not timed: it pays AppTest's own set-up.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CONSORTIA_WORKSPACE"] = str(workspace.root)
    app = AppTest.from_file(DASHBOARD, default_timeout=120).run()
    app.switch_page(f"views/{page}.py")
    if clear_caches:
        st.cache_data.clear()
    started = time.perf_counter()
    app.run()
    elapsed = time.perf_counter() - started
    if app.exception:
        raise RuntimeError(f"page {page} raised: {app.exception[0].value}")
    return elapsed


def registry_import_seconds() -> float:
    """Seconds a fresh Python process takes to import the registry adapter (MLflow and torch)."""
    code = "import time; t = time.perf_counter(); import components.adapters.tracking; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def run(runs: int, rounds: int, parties: int, repeats: int, console: Console) -> DashboardBenchmark:
    with tempfile.TemporaryDirectory(prefix="consortia-dashboard-bench-") as folder:
        started = time.perf_counter()
        workspace = synthetic_workspace(Path(folder), runs=runs, rounds=rounds, parties=parties)
        build_s = time.perf_counter() - started
        console.print(f"built {runs} runs x {rounds} rounds, {parties} parties in {build_s:.1f} s")
        cold = {page: render_seconds(workspace, page, clear_caches=True) for page in PAGES}
        timings = [
            PageTiming(
                page=page,
                cold_s=cold[page],
                uncached_s=[render_seconds(workspace, page, clear_caches=True) for _ in range(repeats)],
                cached_s=[render_seconds(workspace, page, clear_caches=False) for _ in range(repeats)],
            )
            for page in PAGES
        ]
    return DashboardBenchmark(
        runs=runs,
        rounds=rounds,
        parties=parties,
        repeats=repeats,
        build_s=build_s,
        registry_import_s=registry_import_seconds(),
        pages=timings,
        slowest_uncached_median_s=max(t.uncached_median for t in timings),
    )


def show(result: DashboardBenchmark, console: Console) -> None:
    table = Table(
        title=f"Dashboard render seconds: {result.runs} runs x {result.rounds} rounds, {result.parties} parties, "
        f"median of {result.repeats}"
    )
    for column in ("page", "first render", "uncached", "cached", "under 2 s"):
        table.add_column(column, justify="right")
    for timing in result.pages:
        verdict = "yes" if timing.uncached_median < 2.0 else "NO"
        table.add_row(
            timing.page,
            f"{timing.cold_s:.3f}",
            f"{timing.uncached_median:.3f}",
            f"{timing.cached_median:.3f}",
            verdict,
        )
    console.print(table)
    console.print(f"a fresh server's first page also imports MLflow and torch: {result.registry_import_s:.2f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parties", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console()
    # AppTest sessions and cache clearing outside a server make Streamlit warn on every render
    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
    result = run(args.runs, args.rounds, args.parties, args.repeats, console)
    show(result, console)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(result.model_dump_json(indent=2))
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

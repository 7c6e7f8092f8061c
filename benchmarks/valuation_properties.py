"""The properties a stakeholder checks in contributions and rewards, over several seeds, before and after truncation.

Run with ``python -m benchmarks.valuation_properties [--seeds 0 1 2 3 4] [--rounds 20] [--method exact]``.

Workloads on scikit-learn digits (30% is the coordinator's validation split; utility: negated log loss,
the product's default), each party training the same MLP for two local epochs a round, FedAvg:

- ``equal``: three parties with IID rows of equal size. Symmetry: every pair's totals are equal within
  error (``equal_within_error``) and every reward share is within 5 points of a third.
- ``sizes``: three IID parties holding rows in the ratio 1:2:4. Monotonicity: totals rank by size.
- ``adversaries``: three IID parties, one whose rows have 60% of their labels flipped (``noisy``), and
  ``copy`` holding p1's rows. The noisy party ranks last; the copy never above p1.

Stability: Kendall's tau between the rank orders of every pair of seeds, averaged. Each workload is
valued with ``min_round_gain`` 0 (every round summed, as before) and with the product's default, side by
side on the same trained rounds. Prints a table and writes ``benchmarks/results/valuation_properties.json``.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from benchmarks.machine import machine_facts
from benchmarks.records import now, write_record
from components.core import standardization
from components.core.config import RewardConfig, TrainingSpec, ValuationConfig
from components.core.kernels import weighted_mean
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.core.rewards import allocate_rewards, paid_contributions
from components.core.strategies import ClientUpdate
from components.core.valuation.run_totals import RoundGame, equal_within_error, value_run
from components.ml.model import build_model, get_params
from components.ml.training import predict_proba, train_local

WORKLOADS = {"equal": (1, 1, 1), "sizes": (1, 2, 4), "adversaries": (1, 1, 1, 1)}
NOISY, COPY, ORIGINAL = "noisy", "copy", "p1"


class Setup(BaseModel):
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    rounds: int = 20
    method: str = "exact"
    flipped_share: float = 0.6
    local: TrainingSpec = TrainingSpec(local_epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9)
    truncations: list[float] = Field(default_factory=lambda: [0.0, ValuationConfig().min_round_gain])


class SeedValues(BaseModel):
    workload: str
    seed: int
    min_round_gain: float
    totals: dict[str, float]
    errors: dict[str, float]
    shares: dict[str, float]
    valued_rounds: int
    evaluations: int


class PropertyRow(BaseModel):
    """One workload at one truncation, over every seed."""

    workload: str
    min_round_gain: float
    check: str
    passed_seeds: int
    seeds: int
    detail: str
    kendall_tau: float | None


class Result(BaseModel):
    setup: Setup
    rows: list[PropertyRow]
    values: list[SeedValues]


def workload_rounds(setup: Setup, workload: str, seed: int) -> tuple[list[RoundGame], ModelSpec, tuple]:
    """Train ``setup.rounds`` FedAvg rounds of ``workload``; return every round's updates and start."""
    features, labels = load_digits(return_X_y=True)
    features = features.astype(np.float32)
    train_x, val_x, train_y, val_y = train_test_split(
        features, labels, test_size=0.3, stratify=labels, random_state=seed
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_y))
    sizes = WORKLOADS[workload]
    cuts = np.cumsum([0, *(len(order) * s // sum(sizes) for s in sizes)])
    parties = {
        f"p{i + 1}": (train_x[order[a:b]], train_y[order[a:b]].copy())
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    }
    if workload == "adversaries":
        noisy_x, noisy_y = parties.pop(f"p{len(sizes)}")
        flip = rng.random(len(noisy_y)) < setup.flipped_share
        noisy_y[flip] = (noisy_y[flip] + rng.integers(1, 10, size=int(flip.sum()))) % 10
        parties[NOISY] = (noisy_x, noisy_y)
        parties[COPY] = parties[ORIGINAL]
    spec = ModelSpec(n_features=features.shape[1], n_classes=10, hidden=[32], seed=seed)
    current = standardization.fit_rows(get_params(build_model(spec)), train_x)
    games = []
    for round_number in range(1, setup.rounds + 1):
        updates = []
        for name, (x, y) in sorted(parties.items()):
            params, result = train_local(spec, current, x, y, setup.local, round_number)
            updates.append(ClientUpdate(name, params, result.num_examples))
        games.append(RoundGame(round_number, updates, current))
        current = weighted_mean([u.params for u in updates], [float(u.num_examples) for u in updates])
    return games, spec, (val_x, val_y)


def value_workload(setup: Setup, workload: str, seed: int) -> list[SeedValues]:
    """The workload's trained rounds valued at every truncation of ``setup``, with the reward split."""
    games, spec, (val_x, val_y) = workload_rounds(setup, workload, seed)

    def utility(params: Params) -> float:
        return -float(log_loss(val_y, predict_proba(spec, params, val_x), labels=list(range(10))))

    parties = [u.party for u in games[0].updates]
    rewards = RewardConfig()
    out = []
    for min_round_gain in setup.truncations:
        run = value_run(setup.method, games, utility, {}, parties, min_round_gain)
        # as before (every round summed, paid as valued), or as the product now pays
        paid = paid_contributions(run.totals, run.errors) if min_round_gain > 0 else run.totals
        shares = allocate_rewards(rewards.pool, paid, (), rewards.participation_floor)
        out.append(
            SeedValues(
                workload=workload,
                seed=seed,
                min_round_gain=min_round_gain,
                totals=run.totals,
                errors=run.errors,
                shares={p: 100 * v / rewards.pool for p, v in shares.items()},
                valued_rounds=len(run.valued),
                evaluations=run.evaluations,
            )
        )
    return out


def ranking(values: SeedValues) -> list[str]:
    return sorted(values.totals, key=lambda p: (-values.totals[p], p))


def mean_kendall_tau(runs: Sequence[SeedValues]) -> float | None:
    """Kendall's tau between the rank orders of every pair of seeds, averaged (None with one seed)."""
    taus = []
    for a, b in itertools.combinations(runs, 2):
        parties = sorted(a.totals)
        taus.append(kendalltau([a.totals[p] for p in parties], [b.totals[p] for p in parties]).statistic)
    return float(np.mean(taus)) if taus else None


def symmetric(values: SeedValues) -> tuple[bool, float, float]:
    """Every pair equal within error and every share within 5 points of equal; worst gap and worst share gap."""
    parties = sorted(values.totals)
    within = all(
        equal_within_error(values.totals[a], values.totals[b], values.errors[a], values.errors[b])
        for a, b in itertools.combinations(parties, 2)
    )
    share_gap = max(abs(values.shares[p] - 100 / len(parties)) for p in parties)
    spread = max(values.totals.values()) - min(values.totals.values())
    return within and share_gap <= 5.0, spread, share_gap


def by_size(values: SeedValues) -> bool:
    return ranking(values) == ["p3", "p2", "p1"]


def adversaries_last(values: SeedValues) -> bool:
    noisy_last = ranking(values)[-1] == NOISY and values.totals[NOISY] < min(
        v for p, v in values.totals.items() if p != NOISY
    )
    return noisy_last and values.totals[COPY] <= values.totals[ORIGINAL] + 1e-9


def check_rows(setup: Setup, values: Sequence[SeedValues]) -> list[PropertyRow]:
    rows = []
    for workload, truncation in itertools.product(WORKLOADS, setup.truncations):
        runs = [v for v in values if v.workload == workload and v.min_round_gain == truncation]
        if not runs:
            continue
        if workload == "equal":
            results = [symmetric(v) for v in runs]
            passed = sum(ok for ok, _, _ in results)
            detail = (
                f"worst share gap {max(g for _, _, g in results):.1f} pts; worst total spread "
                f"{max(s for _, s, _ in results):.3f} vs mean 2x(sum of errors) "
                f"{np.mean([2 * sum(sorted(v.errors.values())[-2:]) for v in runs]):.3f}"
            )
            check = "symmetry"
        elif workload == "sizes":
            passed = sum(by_size(v) for v in runs)
            detail = "orders: " + ", ".join(">".join(ranking(v)) for v in runs)
            check = "monotonicity 1:2:4"
        else:
            passed = sum(adversaries_last(v) for v in runs)
            detail = "noisy last, copy <= p1; copy - p1: " + ", ".join(
                f"{v.totals[COPY] - v.totals[ORIGINAL]:+.3f}" for v in runs
            )
            check = "flipped and copy"
        rows.append(
            PropertyRow(
                workload=workload,
                min_round_gain=truncation,
                check=check,
                passed_seeds=passed,
                seeds=len(runs),
                detail=detail,
                kendall_tau=mean_kendall_tau(runs),
            )
        )
    return rows


def table(result: Result, wall_seconds: float) -> Table:
    out = Table(
        title=(
            f"Valuation properties: digits, {result.setup.method}, {result.setup.rounds} rounds, "
            f"seeds {result.setup.seeds}"
        ),
        caption=(
            "min gain 0 is the product before: every round summed, rewards paid as valued. The default is the "
            "product now: rounds that moved the global utility by less than that share of the run's largest move "
            "are skipped, and parties equal within error are paid equally. Kendall tau: rank orders of every "
            "pair of seeds, mean (meaningless for equal parties). "
            f"Total run time {wall_seconds:.0f} s."
        ),
        caption_justify="left",
    )
    for column in ("workload", "min gain", "check", "seeds passed", "Kendall tau", "detail"):
        out.add_column(column, justify="left" if column in ("check", "detail") else "right")
    for row in result.rows:
        out.add_row(
            row.workload,
            f"{row.min_round_gain:.2f}",
            row.check,
            f"{row.passed_seeds} / {row.seeds}",
            "n/a" if row.kendall_tau is None else f"{row.kendall_tau:.2f}",
            row.detail,
        )
    return out


def main(argv: Sequence[str] | None = None) -> Result:
    defaults = Setup()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--method", default=defaults.method)
    args = parser.parse_args(argv)
    setup = Setup(seeds=args.seeds, rounds=args.rounds, method=args.method)
    facts, started_at, started = machine_facts(), now(), time.perf_counter()
    console = Console(width=150)
    console.print(facts.line())
    values = [v for workload in WORKLOADS for seed in setup.seeds for v in value_workload(setup, workload, seed)]
    result = Result(setup=setup, rows=check_rows(setup, values), values=values)
    wall = time.perf_counter() - started
    console.print(table(result, wall))
    command = shlex.join(["python", "-m", "benchmarks.valuation_properties", *(sys.argv[1:] if argv is None else argv)])
    console.print(f"wrote {write_record('valuation_properties', command, result, started_at, wall, facts)}")
    return result


if __name__ == "__main__":
    main()

"""Every aggregation strategy beside centralized training, on scikit-learn digits split among 10 parties.

Run with ``python -m benchmarks.strategies``. In-process simulation: each party trains the same small
MLP locally (``components.ml.training.train_local``) on its Dirichlet(alpha=0.3) share of the training
rows, the strategy aggregates, the global model is scored on a held-out test split. Three seeds
(split, partition, initial weights and local shuffling all follow the seed).

Server learning rates and FedProx's mu are chosen first by a small grid search (four values each),
scored on a validation split carved from the training rows of a separate tuning seed. All seeds draw
from the same 1,797 digits, so those validation rows may appear in another seed's test split.

Robustness: 2 of the 10 parties send their delta sign-flipped and scaled by 10; FedAvg is compared
with the robust strategies, side by side with their clean runs. DP: DP-FedAvg (central) with the
epsilon the RDP accountant reports after each round.

A second, adaptive attack stays inside the honest spread instead: "a little is enough" (ALIE, Baruch
et al. 2019), where the 2 attackers know every honest update of the round and both send the honest
mean shifted by z standard deviations per coordinate (z = 0.25 for n=10, f=2, the paper's choice),
small enough to pass as honest.

Robust options are set by the fraction of bad inputs each rule must tolerate, not tuned: with f=2 of
n=10 bad, trimmed mean needs beta >= f/n = 0.2 (the minimum; beta=0.3 adds a margin). Bucketing
(Karimireddy, He, Jaggi 2022) averages random pairs (s=2, the largest s with s*f/n < 1/2) and hands
the 5 bucket means to the inner rule; up to 2 of those 5 can hold an attacker, so a trimmed mean over
buckets would need beta >= 0.4, which on 5 inputs is the median. The bucketed trimmed mean keeps
beta=0.2 (trimming 1 of 5 per side) to sit beside the plain row with the same option. Nearest-neighbour
mixing (Allouah et al. 2023) replaces each update by the mean of its n - f = 8 nearest before the
inner rule, with f=2 as for Multi-Krum.

Prints a table and writes ``benchmarks/results/strategies.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from scipy.stats import norm
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from benchmarks.tables import Goal, met
from components.core import standardization
from components.core.config import TrainingSpec
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.core.partition import partition_dirichlet
from components.core.strategies import ClientUpdate, build_strategy
from components.core.strategies.dp import DifferentialPrivacy, RdpAccountant
from components.ml.model import build_model, get_params
from components.ml.training import predict_proba, train_local

RESULTS = Path(__file__).parent / "results" / "strategies.json"
Attack = Literal["sign_flip", "alie"]
FROZEN = ["standardize.mean", "standardize.scale"]  # fitted statistics, not trained by parties


class Setup(BaseModel):
    parties: int = 10
    alpha: float = 0.3
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    tuning_seed: int = 100
    rounds: int = 40
    hidden: list[int] = Field(default_factory=lambda: [32])
    local: TrainingSpec = TrainingSpec(local_epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9)
    central_epochs: int = 40
    test_fraction: float = 0.25
    attackers: int = 2
    attack_scale: float = 10.0
    dp_delta: float = 1e-5


@dataclass(frozen=True)
class Workload:
    """One seed's data: training rows split among parties, and the rows that score the model."""

    spec: ModelSpec
    initial: Params
    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    shares: list[np.ndarray]


class StrategyRun(BaseModel):
    name: str
    strategy: str
    options: dict[str, Any]
    accuracy: list[float]
    mean: float
    std: float
    epsilon_per_round: list[float] | None = None


class RobustnessRow(BaseModel):
    strategy: str
    clean: float
    attacked: float
    drop: float
    attacked_per_seed: list[float]
    attack: str = "sign_flip"


class Verdicts(BaseModel):
    best_of_fedprox_fedadam: str
    gap_to_centralized: float
    within_3_points: bool
    robust_within_3_points_of_own_clean_run: dict[str, bool]
    robust_within_3_points_of_clean_fedavg: dict[str, bool]
    fedavg_collapses_under_attack: bool


class AccountantCheck(BaseModel):
    """opacus's documented RDP example (module docstring of opacus.accountants.analysis.rdp), recomputed."""

    parameters: list[tuple[float, float, int]] = [(1e-5, 1.0, 10), (1e-4, 3.0, 4)]  # (q, sigma, steps)
    orders: list[int] = list(range(2, 33))
    delta: float = 1e-5
    documented_epsilon: float = 0.336
    computed_epsilon: float = 0.0


def check_accountant() -> AccountantCheck:
    check = AccountantCheck()
    accountant = RdpAccountant(orders=check.orders)
    for sample_rate, noise_multiplier, steps in check.parameters:
        accountant.record(noise_multiplier, sample_rate, steps)
    return check.model_copy(update={"computed_epsilon": accountant.epsilon(check.delta)})


class BenchmarkResult(BaseModel):
    setup: Setup
    tuning: dict[str, dict[str, float]]
    chosen: dict[str, dict[str, Any]]
    centralized: StrategyRun
    strategies: list[StrategyRun]
    robustness: list[RobustnessRow]
    adaptive_attack: list[RobustnessRow] = Field(default_factory=list)
    verdicts: Verdicts
    accountant_check: AccountantCheck
    seconds: float


def make_workload(setup: Setup, seed: int, validation: bool) -> Workload:
    """Split digits by ``seed``; with ``validation`` the scoring rows come from the training part."""
    features, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=setup.test_fraction, stratify=labels, random_state=seed
    )
    if validation:
        train_x, test_x, train_y, test_y = train_test_split(
            train_x, train_y, test_size=0.2, stratify=train_y, random_state=seed
        )
    spec = ModelSpec(n_features=features.shape[1], n_classes=10, hidden=setup.hidden, seed=seed)
    initial = standardization.fit_rows(get_params(build_model(spec)), train_x)
    shares = partition_dirichlet(train_y, setup.parties, setup.alpha, seed)
    return Workload(
        spec=spec, initial=initial, train_x=train_x, train_y=train_y, eval_x=test_x, eval_y=test_y, shares=shares
    )


def sign_flip(params: Params, current: Params, scale: float) -> Params:
    """The attack: send ``current - scale * (params - current)``."""
    return {name: (current[name] - scale * (a - current[name])).astype(a.dtype) for name, a in params.items()}


def alie_z(parties: int, attackers: int) -> float:
    """ALIE's shift in standard deviations: enough to move the median, too little to look like an outlier."""
    supporters = parties // 2 + 1 - attackers
    return float(norm.ppf((parties - supporters) / parties))


def little_is_enough(honest: Sequence[Params], z: float) -> Params:
    """The ALIE attack (Baruch et al. 2019): honest mean minus ``z`` honest standard deviations per coordinate."""
    out = {}
    for name, first in honest[0].items():
        stacked = np.stack([np.asarray(update[name], dtype=np.float64) for update in honest])
        out[name] = (stacked.mean(axis=0) - z * stacked.std(axis=0)).astype(first.dtype)
    return out


def accuracy(work: Workload, params: Params) -> float:
    """Share of scoring rows predicted right; a row with non-finite outputs (a diverged model) counts as wrong."""
    proba = predict_proba(work.spec, params, work.eval_x)
    right = (proba.argmax(axis=1) == work.eval_y) & np.isfinite(proba).all(axis=1)
    return float(right.mean())


def federate(
    setup: Setup,
    work: Workload,
    strategy_name: str,
    options: dict[str, Any],
    seed: int,
    attackers: Sequence[int] = (),
    attack: Attack = "sign_flip",
) -> tuple[float, list[float] | None]:
    """Final accuracy of a federated run and, for DP, the epsilon after each round."""
    strategy = build_strategy(strategy_name, **options)
    training = setup.local.model_copy(update=strategy.training_overrides())
    current: Params = dict(work.initial)
    epsilons: list[float] = []
    for round_number in range(1, setup.rounds + 1):
        updates = []
        for party, rows in enumerate(work.shares):
            local = training.model_copy(update={"seed": seed * 1000 + party})
            params, result = train_local(
                work.spec, current, work.train_x[rows], work.train_y[rows], local, round_number
            )
            if party in attackers and attack == "sign_flip":
                params = sign_flip(params, current, setup.attack_scale)
            updates.append(ClientUpdate(f"party-{party}", params, result.num_examples))
        if attackers and attack == "alie":
            honest = [u.params for i, u in enumerate(updates) if i not in attackers]
            forged = little_is_enough(honest, alie_z(setup.parties, len(attackers)))
            updates = [replace(u, params=forged) if i in attackers else u for i, u in enumerate(updates)]
        current = strategy.aggregate(round_number, current, updates)
        if isinstance(strategy, DifferentialPrivacy):
            epsilons.append(strategy.epsilon(setup.dp_delta))
    return accuracy(work, current), (epsilons if isinstance(strategy, DifferentialPrivacy) else None)


def centralized(setup: Setup, work: Workload, seed: int) -> float:
    training = setup.local.model_copy(update={"local_epochs": setup.central_epochs, "seed": seed})
    params, _ = train_local(work.spec, work.initial, work.train_x, work.train_y, training)
    return accuracy(work, params)


TUNING_GRID: dict[str, tuple[str, list[float]]] = {
    "fedprox": ("mu", [0.001, 0.01, 0.1, 1.0]),
    "fedadam": ("server_learning_rate", [0.003, 0.01, 0.03, 0.1]),
    "fedyogi": ("server_learning_rate", [0.003, 0.01, 0.03, 0.1]),
    "fedadagrad": ("server_learning_rate", [0.003, 0.01, 0.03, 0.1]),
}


def tune(setup: Setup) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Validation accuracy of each grid value on the tuning seed, and the best value per strategy."""
    work = make_workload(setup, setup.tuning_seed, validation=True)
    scores: dict[str, dict[str, float]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for strategy, (option, values) in TUNING_GRID.items():
        scores[strategy] = {
            f"{option}={value:g}": federate(setup, work, strategy, {option: value}, setup.tuning_seed)[0]
            for value in values
        }
        best = max(values, key=lambda v: scores[strategy][f"{option}={v:g}"])
        chosen[strategy] = {option: best}
    return scores, chosen


BUCKET_SEED = 0  # fixed so runs are reproducible; see components/strategies/bucketing.py

ROBUST: list[tuple[str, str, dict[str, Any]]] = [
    ("FedAvg", "fedavg", {}),
    ("Median", "median", {}),
    ("Trimmed mean (beta=0.2)", "trimmed_mean", {"beta": 0.2}),
    ("Trimmed mean (beta=0.3)", "trimmed_mean", {"beta": 0.3}),
    ("Multi-Krum (f=2)", "multikrum", {"f": 2}),
    ("Bucketing(Median, s=2)", "bucketing", {"inner": "median", "bucket_size": 2, "seed": BUCKET_SEED}),
    (
        "Bucketing(Trimmed mean (beta=0.2), s=2)",
        "bucketing",
        {"inner": "trimmed_mean", "inner_options": {"beta": 0.2}, "bucket_size": 2, "seed": BUCKET_SEED},
    ),
    ("Mixing(Median, f=2)", "mixing", {"inner": "median", "f": 2}),
    (
        "Mixing(Trimmed mean (beta=0.2), f=2)",
        "mixing",
        {"inner": "trimmed_mean", "inner_options": {"beta": 0.2}, "f": 2},
    ),
]


def line_up(chosen: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, strategy name, options) of every run in the main table."""
    return [
        ("FedAvg", "fedavg", {}),
        ("FedProx", "fedprox", chosen["fedprox"]),
        ("FedAdam", "fedadam", chosen["fedadam"]),
        ("FedYogi", "fedyogi", chosen["fedyogi"]),
        ("FedAdagrad", "fedadagrad", chosen["fedadagrad"]),
        *ROBUST[1:],
        ("Clipping(FedAvg, 1.0)", "clipping", {"max_norm": 1.0}),
        (
            "DP-FedAvg (z=0.3, C=1.0)",
            "dp",
            {"clip_norm": 1.0, "noise_multiplier": 0.3, "frozen": FROZEN, "seed": 0},
        ),
        (
            "DP-FedAvg (z=1.0, C=1.0)",
            "dp",
            {"clip_norm": 1.0, "noise_multiplier": 1.0, "frozen": FROZEN, "seed": 0},
        ),
    ]


def summarise(name: str, strategy: str, options: dict[str, Any], accuracy: list[float], **extra: Any) -> StrategyRun:
    return StrategyRun(
        name=name,
        strategy=strategy,
        options=options,
        accuracy=accuracy,
        mean=float(np.mean(accuracy)),
        std=float(np.std(accuracy)),
        **extra,
    )


def run(setup: Setup, console: Console) -> BenchmarkResult:
    started = time.perf_counter()
    console.print("tuning server learning rates and mu on a validation split ...")
    tuning, chosen = tune(setup)
    works = {seed: make_workload(setup, seed, validation=False) for seed in setup.seeds}
    central = summarise("Centralized", "centralized", {}, [centralized(setup, works[s], s) for s in setup.seeds])
    runs: list[StrategyRun] = []
    for name, strategy, options in line_up(chosen):
        outcomes = [federate(setup, works[s], strategy, options, s) for s in setup.seeds]
        epsilons = outcomes[0][1]
        runs.append(summarise(name, strategy, options, [a for a, _ in outcomes], epsilon_per_round=epsilons))
        console.print(f"  {name}: {runs[-1].mean:.3f}")
    attackers = list(range(setup.attackers))
    by_name = {r.name: r for r in runs}

    def under(attack: Attack) -> list[RobustnessRow]:
        rows = []
        for name, strategy, options in ROBUST:
            attacked = [federate(setup, works[s], strategy, options, s, attackers, attack)[0] for s in setup.seeds]
            clean, mean = by_name[name].mean, float(np.mean(attacked))
            rows.append(
                RobustnessRow(
                    strategy=name,
                    clean=clean,
                    attacked=mean,
                    drop=clean - mean,
                    attacked_per_seed=attacked,
                    attack=attack,
                )
            )
            console.print(f"  {name} under {attack}: {mean:.3f}")
        return rows

    robustness, adaptive = under("sign_flip"), under("alie")
    best = max((by_name["FedProx"], by_name["FedAdam"]), key=lambda r: r.mean)
    clean_fedavg = by_name["FedAvg"].mean
    robust_rows = [row for row in robustness if row.strategy != "FedAvg"]
    verdicts = Verdicts(
        best_of_fedprox_fedadam=best.name,
        gap_to_centralized=central.mean - best.mean,
        within_3_points=central.mean - best.mean <= 0.03,
        robust_within_3_points_of_own_clean_run={r.strategy: r.drop <= 0.03 for r in robust_rows},
        robust_within_3_points_of_clean_fedavg={r.strategy: clean_fedavg - r.attacked <= 0.03 for r in robust_rows},
        fedavg_collapses_under_attack=robustness[0].attacked < 0.5,
    )
    return BenchmarkResult(
        setup=setup,
        tuning=tuning,
        chosen=chosen,
        centralized=central,
        strategies=runs,
        robustness=robustness,
        adaptive_attack=adaptive,
        verdicts=verdicts,
        accountant_check=check_accountant(),
        seconds=time.perf_counter() - started,
    )


def describe(options: dict[str, Any]) -> str:
    """Options as ``k=v`` text, a wrapped strategy's options inline, the seed and frozen names left out."""
    parts = []
    for key, value in options.items():
        if key in ("frozen", "seed"):
            continue
        if key == "inner_options":
            parts.append(describe(value))
        else:
            parts.append(f"{key}={value}" if isinstance(value, str) else f"{key}={value:g}")
    return ", ".join(parts)


def show(result: BenchmarkResult, console: Console) -> None:
    seeds = len(result.setup.seeds)
    table = Table(title=f"Digits, {result.setup.parties} parties, Dirichlet alpha={result.setup.alpha}, {seeds} seeds")
    for column in ("strategy", "options", "accuracy (mean ± std)", "vs centralized", "epsilon (delta=1e-5)"):
        table.add_column(column, overflow="fold")
    central = result.centralized.mean
    for run in [result.centralized, *result.strategies]:
        options = describe(run.options)
        epsilon = f"{run.epsilon_per_round[-1]:.1f}" if run.epsilon_per_round else ""
        gap = "" if run is result.centralized else f"{run.mean - central:+.3f}"
        table.add_row(run.name, options, f"{run.mean:.3f} ± {run.std:.3f}", gap, epsilon)
    console.print(table)
    setup = result.setup
    titles = {
        "sign_flip": f"{setup.attackers} of {setup.parties} parties send sign-flipped, {setup.attack_scale:g}x-scaled "
        "updates",
        "alie": f"{setup.attackers} of {setup.parties} parties send ALIE updates (honest mean - "
        f"{alie_z(setup.parties, setup.attackers):.2f} std)",
    }
    for rows in (result.robustness, result.adaptive_attack):
        if not rows:
            continue
        attack = Table(title=titles[rows[0].attack])
        for column in ("strategy", "clean", "attacked", "drop", "attacked per seed"):
            attack.add_column(column)
        for row in rows:
            per_seed = ", ".join(f"{a:.3f}" for a in row.attacked_per_seed)
            attack.add_row(row.strategy, f"{row.clean:.3f}", f"{row.attacked:.3f}", f"{row.drop:+.3f}", per_seed)
        console.print(attack)
    for run in result.strategies:
        if run.epsilon_per_round:
            per_round = ", ".join(f"{e:.2f}" for e in run.epsilon_per_round)
            console.print(f"{run.name}: epsilon after each round: {per_round}")
    check = result.accountant_check
    console.print(
        f"RDP accountant on opacus's documented example: {check.computed_epsilon:.4f} "
        f"(documented {check.documented_epsilon})"
    )
    console.print(result.verdicts.model_dump())
    console.print(f"{result.seconds:.0f} s")


def goals(result: BenchmarkResult) -> list[Goal]:
    """The issue's two accuracy goals, for the goals table of BENCHMARKS.md."""
    verdicts = result.verdicts
    best = next(run for run in result.strategies if run.name == verdicts.best_of_fedprox_fedadam)
    drops = {row.strategy: row for row in result.robustness}
    fedavg = drops["FedAvg"]

    def listed(names: list[str]) -> str:
        return "; ".join(f"{name} {drops[name].drop * 100:+.1f}" for name in names)

    plain = [name for name in ("Median", "Trimmed mean (beta=0.2)", "Multi-Krum (f=2)") if name in drops]
    mixed = [name for name in drops if name.startswith("Mixing(")]
    own = verdicts.robust_within_3_points_of_own_clean_run
    robust_goal = "2 of 10 parties send sign-flipped 10x updates: robust rules lose at most 3 points, FedAvg collapses"
    return [
        Goal(
            "Strategies on digits, Dirichlet 0.3: best of FedProx/FedAdam within 3 points of centralized",
            f"{best.name} {best.mean:.3f} vs centralized {result.centralized.mean:.3f} "
            f"(gap {verdicts.gap_to_centralized * 100:.1f} points)",
            met(verdicts.within_3_points),
        ),
        Goal(
            robust_goal + " (plain rules)",
            f"drop in points: {listed(plain)}; FedAvg {fedavg.clean:.3f} -> {fedavg.attacked:.3f}",
            met(all(own[name] for name in plain) and verdicts.fedavg_collapses_under_attack),
        ),
        Goal(
            robust_goal + " (after nearest-neighbour mixing)",
            f"drop in points: {listed(mixed)}" if mixed else "no mixing rows",
            met(all(own[name] for name in mixed) and verdicts.fedavg_collapses_under_attack) if mixed else met(None),
        ),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console()
    result = run(Setup(), console)
    show(result, console)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(result.model_dump_json(indent=2))
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

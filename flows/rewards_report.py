"""The contributions and rewards of one run as terminal tables that fit 80 columns, whatever the run's length."""

from __future__ import annotations

import statistics

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from components.run.summary import RunSummary

METRIC_ORDER = ("accuracy", "roc_auc", "rmse", "mae", "r2", "loss")


def rewards_report(summary: RunSummary, per_round: bool = False) -> list[RenderableType]:
    """Totals and rewards, reward models, what a contribution means, then per-round values (compact or full)."""
    report = summary.valuation
    errors = report.errors if report else {}
    ranks = report.ranks if report else {}
    parties = sorted(
        {*summary.contributions, *summary.rewards, *summary.model_rewards},
        key=lambda p: (ranks.get(p, len(ranks) + 1), -summary.contributions.get(p, 0.0), p),
    )
    pool = sum(summary.rewards.values())
    totals = Table(title=f"{summary.run_id}: contributions and rewards", box=box.SIMPLE_HEAD)
    for column in ("party", "rank", "contribution", "± 2 SE", "reward", "share", "reputation"):
        totals.add_column(column, justify="left" if column == "party" else "right")
    for party in parties:
        reward = summary.rewards.get(party)
        totals.add_row(
            party,
            str(ranks[party]) if party in ranks else "",
            f"{summary.contributions[party]:+.4f}" if party in summary.contributions else "",
            f"{2 * errors[party]:.4f}" if party in errors else "",
            "" if reward is None else f"{reward:.2f}",
            f"{reward / pool:.0%}" if reward is not None and pool > 0 else "",
            f"{summary.reputation[party]:.3f}" if party in summary.reputation else "",
        )
    out: list[RenderableType] = [totals, _models_table(summary, parties)]
    out.append(Text(report.statement if report else f"Valuation: {summary.valuation_method}.", style="dim"))
    if summary.round_contributions:
        out.append(_round_table(summary, parties) if per_round else _round_summary(summary, parties))
    return out


def _models_table(summary: RunSummary, parties: list[str]) -> Table:
    metrics = [m for m in METRIC_ORDER if any(m in r.metrics for r in summary.model_rewards.values())]
    table = Table(title="reward models (held-out metrics of the task)", box=box.SIMPLE_HEAD)
    table.add_column("party")
    table.add_column("built from", overflow="fold")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for party in parties:
        model = summary.model_rewards.get(party)
        if model is None:
            continue
        sources = ", ".join(model.sources) if len(model.sources) <= 3 else f"{len(model.sources)} parties"
        table.add_row(
            party,
            sources or "no model",
            *(f"{model.metrics[m]:.4f}" if m in model.metrics else "" for m in metrics),
        )
    return table


def _round_summary(summary: RunSummary, parties: list[str]) -> Table:
    rounds = sorted(summary.round_contributions)
    skipped = len(summary.valuation.rounds_skipped) if summary.valuation else 0
    table = Table(
        title=f"{len(rounds)} of {len(rounds) + skipped} rounds valued ({_spans(rounds)})",
        caption="per round: median, min, max; --per-round lists every valued round",
        box=box.SIMPLE_HEAD,
    )
    for column in ("party", "median", "min", "max", "best round"):
        table.add_column(column, justify="left" if column == "party" else "right")
    for party in parties:
        values = {r: summary.round_contributions[r][party] for r in rounds if party in summary.round_contributions[r]}
        if not values:
            continue
        table.add_row(
            party,
            f"{statistics.median(values.values()):+.4f}",
            f"{min(values.values()):+.4f}",
            f"{max(values.values()):+.4f}",
            str(max(values, key=lambda r: values[r])),
        )
    return table


def _round_table(summary: RunSummary, parties: list[str]) -> Table:
    table = Table(title="contribution per valued round", box=box.SIMPLE_HEAD)
    table.add_column("round", justify="right")
    for party in parties:
        table.add_column(party, justify="right")
    for r in sorted(summary.round_contributions):
        values = summary.round_contributions[r]
        table.add_row(str(r), *(f"{values[p]:+.4f}" if p in values else "" for p in parties))
    return table


def _spans(rounds: list[int]) -> str:
    """``1-5, 7, 9-10`` for [1, 2, 3, 4, 5, 7, 9, 10]."""
    spans: list[list[int]] = []
    for r in rounds:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"

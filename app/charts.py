"""Altair charts for the dashboard: pure functions from a frame (built in ``app.queries``) to a chart."""

from __future__ import annotations

import altair as alt
import pandas as pd

HEIGHT = 240  # pixels, title and axes included (Streamlit fits the chart to it)
BAND = 28  # pixels per party on a party axis
UPRIGHT_LABELS = alt.Axis(labelAngle=0)


def lines_over_rounds(frame: pd.DataFrame, value: str, title: str, series: str | None = None) -> alt.Chart:
    """``value`` per round, one line per ``series`` value when given."""
    encoding = {
        "x": alt.X("round:O", title="round", axis=UPRIGHT_LABELS),
        "y": alt.Y(f"{value}:Q", title=value, scale=alt.Scale(zero=False)),
        "tooltip": ["round", *([series] if series else []), alt.Tooltip(f"{value}:Q", format=".4f")],
    }
    if series:
        encoding["color"] = alt.Color(f"{series}:N", title=series)
    return alt.Chart(frame, title=title, height=HEIGHT).mark_line(point=True).encode(**encoding)


def bars_over_rounds(frame: pd.DataFrame, value: str, title: str, series: str | None = None) -> alt.Chart:
    """``value`` per round as bars, side by side per ``series`` value when given."""
    encoding = {
        "x": alt.X("round:O", title="round", axis=UPRIGHT_LABELS),
        "y": alt.Y(f"{value}:Q", title=value),
        "tooltip": ["round", *([series] if series else []), alt.Tooltip(f"{value}:Q", format=",.4~f")],
    }
    if series:
        encoding["color"] = alt.Color(f"{series}:N", title=series)
        encoding["xOffset"] = alt.XOffset(f"{series}:N")
    return alt.Chart(frame, title=title, height=HEIGHT).mark_bar().encode(**encoding)


def runs_accuracy(frame: pd.DataFrame) -> alt.Chart:
    """Best accuracy of each run over time, coloured by status (frame from ``queries.runs_frame``)."""
    return (
        alt.Chart(frame.dropna(subset=["best_accuracy"]), title="Best accuracy per run", height=HEIGHT)
        .mark_circle(size=80)
        .encode(
            x=alt.X("started_at:T", title="started (UTC)", axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y("best_accuracy:Q", title="best accuracy", scale=alt.Scale(zero=False)),
            color=alt.Color("status:N"),
            tooltip=["run_id", "status", alt.Tooltip("best_accuracy:Q", format=".4f"), "parties", "rounds"],
        )
    )


def contribution_heatmap(frame: pd.DataFrame, title: str = "Contribution per party per round") -> alt.Chart:
    """Party x round cells coloured by contribution, red below zero and blue above (``contributions_frame``)."""
    return (
        alt.Chart(frame, title=title, height=alt.Step(BAND))
        .mark_rect()
        .encode(
            x=alt.X("round:O", title="round", axis=UPRIGHT_LABELS),
            y=alt.Y("party:N", title="party"),
            color=alt.Color("value:Q", title="contribution", scale=alt.Scale(scheme="redblue", domainMid=0)),
            tooltip=["round", "party", alt.Tooltip("value:Q", format="+.4f")],
        )
    )


def party_bars(frame: pd.DataFrame, value: str, title: str, domain: tuple[float, float] | None = None) -> alt.Chart:
    """One horizontal bar per party, on a fixed ``domain`` when given."""
    return (
        alt.Chart(frame.dropna(subset=[value]), title=title, height=alt.Step(BAND))
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=value, scale=alt.Scale(domain=list(domain)) if domain else alt.Undefined),
            y=alt.Y("party:N", title="party", sort="-x"),
            tooltip=["party", alt.Tooltip(f"{value}:Q", format=",.4~f")],
        )
    )


def reward_split(frame: pd.DataFrame) -> alt.Chart:
    """The reward pool as a donut, one slice per party (``totals_frame`` with rewards)."""
    return (
        alt.Chart(frame.dropna(subset=["reward"]), title="Reward split", height=HEIGHT)
        .mark_arc(innerRadius=50)
        .encode(
            theta=alt.Theta("reward:Q"),
            color=alt.Color("party:N"),
            tooltip=["party", alt.Tooltip("reward:Q", format=",.2f"), alt.Tooltip("reward_share:Q", format=".1%")],
        )
    )


def participation_bars(frame: pd.DataFrame) -> alt.Chart:
    """Rounds joined and missed per party over its lifetime, stacked (``parties_frame``)."""
    stacked = frame.rename(columns={"rounds_joined": "joined", "rounds_missed": "missed"}).melt(
        id_vars=["party"], value_vars=["joined", "missed"], var_name="rounds", value_name="count"
    )
    return (
        alt.Chart(stacked, title="Rounds joined and missed", height=alt.Step(BAND))
        .mark_bar()
        .encode(
            x=alt.X("count:Q", title="rounds"),
            y=alt.Y("party:N", title="party"),
            color=alt.Color("rounds:N", scale=alt.Scale(domain=["joined", "missed"], range=["#4c78a8", "#e45756"])),
            tooltip=["party", "rounds", "count"],
        )
    )


def reputation_lines(frame: pd.DataFrame) -> alt.Chart:
    """Each party's reputation after each run (``reputation_frame``)."""
    return (
        alt.Chart(frame, title="Reputation after each run", height=HEIGHT)
        .mark_line(point=True)
        .encode(
            x=alt.X("recorded_at:T", title="run finished (UTC)", axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y("reputation:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("party:N"),
            tooltip=["run_id", "party", alt.Tooltip("reputation:Q", format=".3f")],
        )
    )


def version_metrics(frame: pd.DataFrame) -> alt.Chart:
    """Each registered version's metric, versions holding an alias drawn larger (``version_metrics_frame``)."""
    return (
        alt.Chart(frame.assign(aliased=frame["aliases"] != ""), title="Metric per registered version", height=HEIGHT)
        .mark_point(filled=True)
        .encode(
            x=alt.X("version:O", title="version", axis=UPRIGHT_LABELS),
            y=alt.Y("value:Q", title="value", scale=alt.Scale(zero=False)),
            color=alt.Color("metric:N"),
            size=alt.Size("aliased:N", scale=alt.Scale(domain=[False, True], range=[40, 200]), legend=None),
            tooltip=["version", "metric", alt.Tooltip("value:Q", format=".4f"), "aliases"],
        )
    )


def lineage_dot(frame: pd.DataFrame) -> str:
    """Graphviz DOT of model version -> run -> dataset manifests (``versions_frame``)."""
    lines = ["digraph lineage {", "rankdir=LR;", 'node [shape=box, fontname="sans-serif", fontsize=10];']
    for row in frame.itertuples():
        version = f"{row.model} v{row.version}" + (f"\\n@{row.aliases}" if row.aliases else "")
        lines.append(f'"{version}" -> "run {row.run_id}";')
        for manifest in filter(None, row.manifests.split(", ")):
            party, digest = manifest.split(":", 1)
            lines.append(f'"run {row.run_id}" -> "{party}\\n{digest[:12]}";')
    lines.append("}")
    return "\n".join(lines)


def histogram(frame: pd.DataFrame, title: str) -> alt.Chart:
    """Bars of fixed-width bins (``from``, ``to``, ``count``)."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("from:Q", title="value", bin="binned"),
            x2="to:Q",
            y=alt.Y("count:Q", title="rows"),
            tooltip=["from", "to", "count"],
        )
    )

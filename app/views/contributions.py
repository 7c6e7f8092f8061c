"""Contributions and rewards: who contributed what in each round, who got what, and by which method."""

import streamlit as st

from app import charts, queries
from app.page_parts import NO_RUNS, empty_state, live, pick_run, sources
from components.run.summary import RunSummary

st.title("Contributions and rewards")


def show(run: RunSummary) -> None:
    st.subheader(run.run_id)
    if not run.contributions:
        empty_state("Contributions are valued after the last round: nothing to show for this run yet.")
        return
    st.caption(f"Valuation method: **{run.valuation_method}**")
    if run.valuation is not None:
        st.caption(run.valuation.statement)
    totals = queries.totals_frame(run)
    models = {
        column: st.column_config.NumberColumn(f"reward model {column.removeprefix('model_')}", format="%.4f")
        for column in totals.columns
        if column.startswith("model_") and column != "model_from"
    }
    st.dataframe(
        totals,
        hide_index=True,
        column_config={
            "contribution": st.column_config.NumberColumn(format="%+.4f"),
            "error": st.column_config.NumberColumn("± 2 SE", format="%.4f"),
            "rank": st.column_config.NumberColumn("rank (equal within error, equal rank)"),
            "reward": st.column_config.NumberColumn(format="%.2f"),
            "reward_share": st.column_config.NumberColumn("share", format="percent"),
            "model_from": st.column_config.TextColumn("reward model built from"),
            **models,
        },
    )
    st.altair_chart(charts.party_bars(totals, "contribution", "Total contribution"), width="stretch")
    per_round = queries.contributions_frame(run)
    if not per_round.empty:
        st.altair_chart(charts.contribution_heatmap(per_round), width="stretch")
    if totals["reward"].notna().any():
        st.altair_chart(charts.reward_split(totals), width="stretch")
    else:
        st.caption("No rewards were allocated in this run (valuation only).")


@live
def contributions_page() -> None:
    runs = queries.summaries(sources())
    if not runs:
        empty_state(NO_RUNS)
        return
    if len(runs) == 1:
        st.caption("One run so far: after the next one, two runs can be compared side by side here.")
        show(runs[0])
        return
    for column, (label, key, default) in zip(
        st.columns(2), (("Run", "run", 0), ("Compare with", "compare", 1)), strict=True
    ):
        with column:
            show(pick_run(runs, label, key=key, default=default))


contributions_page()

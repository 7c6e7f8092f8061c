"""Overview: recent runs, the current champion, parties online now."""

import pandas as pd
import streamlit as st

from app import charts, queries
from app.page_parts import NO_RUNS, empty_state, live, sources

st.title("Overview")


@live
def overview() -> None:
    where = sources()
    runs = queries.summaries(where)
    running = [run.run_id for run in runs if run.status == "running"]
    parties = queries.parties_frame(queries.party_rows(where.store_url), run_live=bool(running))
    if not runs:
        empty_state(NO_RUNS)
        return
    frame = queries.runs_frame(runs)
    online = parties[parties["online_now"]]

    runs_col, running_col, online_col, latest_col = st.columns(4)
    runs_col.metric("Runs", len(frame), help=f"Every recorded run ({queries.runs_covered(runs)})")
    running_col.metric(
        "Running now", len(running), help="Runs whose coordinator is alive; one that died reads interrupted"
    )
    online_col.metric(
        "Parties online now",
        f"{len(online)}/{len(parties)}",
        help=f"Registered parties with a heartbeat in the last {queries.ONLINE_WINDOW_S:.0f} s to a running run "
        f"({', '.join(running) or 'none running'})",
    )
    latest = frame.iloc[0]
    latest_col.metric(
        "Latest run's best accuracy", "n/a" if pd.isna(latest.best_accuracy) else f"{latest.best_accuracy:.4f}"
    )

    st.caption(f"Latest run: **{latest.run_id}** ({latest.status}), {latest.parties} parties, rounds {latest.rounds}")

    st.subheader("Runs, newest first")
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "started_at": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "best_accuracy": st.column_config.NumberColumn("best accuracy", format="%.4f"),
            "final_accuracy": st.column_config.NumberColumn("final accuracy", format="%.4f"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        },
    )
    st.altair_chart(charts.runs_accuracy(frame), width="stretch")

    st.subheader("Parties online now")
    if online.empty:
        empty_state(
            f"No party has sent a heartbeat to a running run in the last {queries.ONLINE_WINDOW_S:.0f} s. "
            "Parties show up here while a run is on (`party-agent run --config party.yaml`)."
        )
    else:
        st.dataframe(online[["party", "seconds_ago", "reputation", "cores", "memory_mb"]], hide_index=True)

    st.subheader("Current champion")  # last: the first registry read in a session is the slowest step
    with st.spinner("Reading the model registry..."):
        champions = queries.champions(queries.registered_versions(where, runs))
    if champions:
        st.dataframe(queries.versions_frame(champions), hide_index=True)
    else:
        empty_state("No model promoted yet: a completed run registers its model and promotes the first one.")


overview()

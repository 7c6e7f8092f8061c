"""Parties: who is registered, who is online, how reliable each has been."""

import streamlit as st

from app import charts, queries
from app.page_parts import empty_state, live, sources

st.title("Parties")


@live
def parties_page() -> None:
    where = sources()
    runs = queries.summaries(where)
    completed = [run for run in runs if run.status == "completed"]
    live = any(run.status == "running" for run in runs)
    parties = queries.parties_frame(queries.party_rows(where.store_url), run_live=live)
    if parties.empty:
        empty_state("No party registered yet: a run registers its config's parties (`make demo`).")
        return
    st.dataframe(
        parties,
        hide_index=True,
        column_config={
            "online_now": st.column_config.CheckboxColumn("online now"),
            "last_heartbeat": st.column_config.DatetimeColumn("last heartbeat (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "seconds_ago": st.column_config.NumberColumn("seconds ago", format="%.0f"),
            "reputation": st.column_config.ProgressColumn("reputation", min_value=0.0, max_value=1.0, format="%.3f"),
            "rounds_joined": st.column_config.NumberColumn("rounds joined"),
            "rounds_missed": st.column_config.NumberColumn("rounds missed"),
            "rejected_messages": st.column_config.NumberColumn("rejected messages"),
            "memory_mb": st.column_config.NumberColumn("memory (MB)", format="%.0f"),
            "cpu_percent": st.column_config.NumberColumn("CPU %", format="%.0f"),
        },
    )
    st.caption(
        f"Online now: a heartbeat to a running run in the last {queries.ONLINE_WINDOW_S:.0f} s "
        f"({'a run is running' if live else 'no run is running'}). Rounds joined and missed and rejected "
        f"messages add up the {len(completed)} completed run(s) of {queries.runs_covered(runs)}; "
        "the refusals of every run, failed ones included, are listed below."
    )
    left, right = st.columns(2)
    left.altair_chart(charts.party_bars(parties, "reputation", "Reputation now", domain=(0.0, 1.0)))
    right.altair_chart(charts.participation_bars(parties))

    st.subheader("Reputation over time")
    history = queries.reputation_frame(queries.reputation_rows(where.store_url))
    if history.empty:
        empty_state("No run has updated reputation yet: it is updated at the end of each completed run.")
    else:
        st.altair_chart(charts.reputation_lines(history), width="stretch")
        st.caption(f"Latest update after run **{history['run_id'].iloc[-1]}**.")

    st.subheader("Rejected messages")
    covered = queries.runs_covered(runs)
    refusals = queries.refusals_frame(runs)
    if refusals.empty:
        st.success(f"No message was refused and no reply was missed in any of the {covered}.")
    else:
        st.caption(f"Messages refused at the boundary, replies late, rounds an update was refused in; {covered}.")
        st.dataframe(refusals, hide_index=True)
        reasons = queries.rejections_frame(runs)
        if not reasons.empty:
            st.caption("Why, in the rounds that finished:")
            st.dataframe(reasons, hide_index=True)


parties_page()

"""Run: how one run trained, who took part, what it cost, and whether its model was promoted."""

import streamlit as st

from app import charts, queries
from app.page_parts import NO_RUNS, empty_state, live, pick_run, sources

st.title("Run")


@live
def run_page() -> None:
    runs = queries.summaries(sources())
    if not runs:
        empty_state(NO_RUNS)
        return
    run = pick_run(runs, "Run", key="run")
    st.header(run.run_id)
    rounds = queries.rounds_frame(run)
    status_col, accuracy_col, rounds_col, parties_col = st.columns(4)
    status_col.metric("Status", run.status)
    final = run.final_metrics.accuracy if run.final_metrics else queries.best_accuracy(run)
    accuracy_col.metric("Final accuracy" if run.final_metrics else "Best accuracy so far", _fmt(final))
    rounds_col.metric("Rounds", f"{len(rounds)}/{run.config.get('rounds', len(rounds))}")
    parties_col.metric("Parties", len(queries.run_parties(run)))
    if run.stopped_early:
        st.warning(f"Stopped early: {run.stopped_early}")
    if run.status == "failed" and run.error:
        st.error(f"Failed: {run.error}")
    decisions = queries.plan_decisions_frame(run)
    if not decisions.empty:
        st.subheader("Run plan: each party's decision")
        st.dataframe(decisions, hide_index=True)
    if rounds.empty:
        empty_state("No round has finished yet: charts appear after the first one (live refresh follows the run).")
        return

    st.subheader("Training")
    left, right = st.columns(2)
    accuracy = queries.long_form(rounds, "round", ["accuracy", "roc_auc"], name="metric")
    left.altair_chart(charts.lines_over_rounds(accuracy, "value", "Global accuracy and ROC AUC", "metric"))
    right.altair_chart(charts.lines_over_rounds(rounds, "loss", "Global loss (held out)"))
    party_metrics = queries.party_metrics_frame(run)
    for metric, frame in party_metrics.groupby("metric"):
        st.altair_chart(charts.lines_over_rounds(frame, "value", f"Per party: {metric}", "party"), width="stretch")

    st.subheader("Participation and cost")
    left, right = st.columns(2)
    left.altair_chart(charts.bars_over_rounds(rounds, "participants", "Participants per round"))
    traffic = queries.long_form(rounds, "round", ["bytes_up", "bytes_down"], name="direction")
    right.altair_chart(charts.bars_over_rounds(traffic, "value", "Bytes per round", "direction"))
    left, right = st.columns(2)
    left.altair_chart(charts.bars_over_rounds(rounds, "seconds", "Seconds per round"))
    if rounds["epsilon"].notna().any():
        right.altair_chart(charts.lines_over_rounds(rounds.dropna(subset=["epsilon"]), "epsilon", "Privacy: epsilon"))
    else:
        right.caption("Differential privacy is off for this run: no epsilon to show.")
    st.dataframe(rounds.drop(columns=["epsilon"]), hide_index=True)
    rejected = queries.rejections_frame([run])
    if not rejected.empty:
        st.warning(f"{len(rejected)} update(s) refused or missing in this run")
        st.dataframe(rejected, hide_index=True)
    counts = queries.message_counts_frame(run)
    if not counts.empty:
        st.caption(
            "Messages refused at the boundary (malformed, unexpected) or arriving after their deadline, per party"
        )
        st.dataframe(counts, hide_index=True)

    if run.glm is not None:
        glm = run.glm
        st.subheader(f"Model: {glm.family} GLM, equal to the fit on the pooled rows")
        fit = "converged" if glm.converged else "did NOT converge"
        st.caption(
            f"{glm.n_rows} rows, {fit} in {glm.iterations} iterations; deviance {glm.deviance:.4f}, "
            f"AIC {glm.aic:.4f}, scale {glm.scale:.4g}; coefficients on the standardised features"
        )
        st.dataframe(queries.glm_frame(run), hide_index=True)

    st.subheader("Promotion")
    if run.promotion is None:
        empty_state("No promotion decision yet: it is made after the last round.")
    else:
        p = run.promotion
        verdict = st.success if p.decision == "promoted" else st.warning
        verdict(
            f"**{p.decision}**: registered {p.model_name} v{p.version}, @{p.alias} is v{p.champion_version}. {p.reason}"
        )
        st.caption(f"{p.metric}: candidate {_fmt(p.candidate_value)}, champion before {_fmt(p.champion_value)}")

    st.subheader("Data used")
    st.dataframe(queries.validation_frame(run), hide_index=True)
    st.caption(
        "`manifest` is the SHA-256 of each party's data file, as its owner recomputes it (`sha256sum FILE`) "
        "and finds it in the party's audit log; never rows."
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


run_page()

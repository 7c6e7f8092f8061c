"""Models: registered versions, aliases, and lineage to runs and dataset manifests."""

import streamlit as st

from app import charts, queries
from app.page_parts import NO_RUNS, empty_state, live, sources

st.title("Models")


@live
def models_page() -> None:
    where = sources()
    runs = queries.summaries(where)
    if not runs:
        empty_state(NO_RUNS)
        return
    registered = queries.registered_versions(where, runs)
    versions = queries.versions_frame(registered)
    if versions.empty:
        names = ", ".join(queries.model_names(runs)) or "none configured"
        empty_state(f"No model registered yet (models: {names}): a completed run registers its final model.")
        return
    for model, frame in versions.groupby("model"):
        st.subheader(model)
        st.dataframe(frame.drop(columns=["model"]), hide_index=True)
        metrics = queries.version_metrics_frame(v for v in registered if v.name == model)
        if not metrics.empty:
            st.altair_chart(charts.version_metrics(metrics), width="stretch")
        st.graphviz_chart(charts.lineage_dot(frame))
    st.caption("Lineage: each version comes from one run, which trained on the listed dataset manifests (DVC hashes).")


models_page()

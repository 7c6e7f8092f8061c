"""Models: registered versions, aliases, lineage to runs and dataset manifests, and each version's model card."""

import streamlit as st

from app import charts, queries
from app.page_parts import NO_RUNS, empty_state, live, sources
from components.core.ports import RegisteredVersion
from components.run.lineage import NOT_PER_PARTY

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
        own = [v for v in registered if v.name == model]
        metrics = queries.version_metrics_frame(own)
        if not metrics.empty:
            st.altair_chart(charts.version_metrics(metrics), width="stretch")
        st.graphviz_chart(charts.lineage_dot(frame))
        model_card(where, model, own)
    st.caption(
        "Lineage: each version comes from one run, which trained on the listed dataset manifests (DVC hashes),"
        " under the contract, config (SHA-256) and code version shown."
    )


def model_card(where: queries.Sources, model: str, versions: list[RegisteredVersion]) -> None:
    """The picked version's card: per-party metrics and fairness gap first, then the whole card."""
    newest_first = sorted(versions, key=lambda v: v.version, reverse=True)
    champion = next((i for i, v in enumerate(newest_first) if "champion" in v.aliases), 0)
    labels = [queries.version_label(v) for v in newest_first]
    picked = newest_first[labels.index(st.selectbox("Model card of", labels, index=champion, key=f"card-{model}"))]
    card = queries.model_card(where, picked)
    if card is None:
        empty_state(f"Version {picked.version} was registered without a model card.")
        return
    st.markdown(f"**Per-party metrics of v{picked.version}**")
    parties = queries.card_party_frame(card)
    if parties.empty:
        empty_state(f"Version {picked.version}: {NOT_PER_PARTY} (no fairness gap).")
    else:
        st.dataframe(parties, hide_index=True)
        for metric, gap in sorted(card.fairness_gaps.items()):
            st.metric(f"Fairness gap: {metric}", f"{gap.gap:.4f}", help=f"worst party: {gap.worst_party}")
        st.dataframe(queries.card_gaps_frame(card), hide_index=True)
    st.dataframe(queries.card_data_frame(card), hide_index=True)
    with st.container(border=True):
        st.markdown(card.markdown())


models_page()

"""Data catalog: each party's dataset manifest, contract and last validation (summaries only, never rows)."""

import streamlit as st

from app import charts, queries
from app.page_parts import empty_state, live, sources

st.title("Data catalog")


@live
def catalog_page() -> None:
    rows = queries.validation_rows(sources().store_url)
    statistics_section(queries.stats_reports(sources().stats_folder))
    if not rows:
        empty_state(
            "No dataset validated yet: each party checks its data against the contract at the start of a run "
            "(`make demo`, or `party-agent check --config party.yaml` on a party's host)."
        )
        return
    catalog = queries.catalog_frame(rows)
    st.dataframe(
        catalog,
        hide_index=True,
        column_config={
            "validated_at": st.column_config.DatetimeColumn("validated (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "passed": st.column_config.CheckboxColumn("passed"),
        },
    )
    failed = catalog[~catalog["passed"]]
    if failed.empty:
        st.success("Every party's latest dataset meets its contract.")
    else:
        st.error("Failing contracts: " + "; ".join(f"{r.party}: {r.failed}" for r in failed.itertuples()))
    st.caption(
        f"Latest validation in run **{rows[0]['run_id']}**. "
        "Manifests hold a content hash, row count and schema; parties never send data rows."
    )
    st.altair_chart(charts.party_bars(catalog, "rows", "Rows per party (latest manifest)"), width="stretch")
    for party in catalog["party"]:
        with st.expander(f"Schema of {party}'s dataset"):
            st.dataframe(queries.schema_of(rows, party), hide_index=True)


def statistics_section(reports: dict) -> None:
    """Federated statistics (``consortia stats``): pooled figures per feature, suppression shown per party."""
    if not reports:
        return
    st.subheader("Federated statistics")
    name = st.selectbox("Dataset", list(reports), index=len(reports) - 1, key="stats_report")
    report = reports[name]
    parties = ", ".join(f"{party}: {rows} rows" for party, rows in report["parties"].items())
    st.caption(f"{report['contract']} at {report['created_at']} ({parties}); pooled over the parties that sent figures")
    frame = queries.stats_frame(report)
    st.dataframe(frame, hide_index=True)
    suppressed = frame[frame["suppressed at"] != ""]
    if not suppressed.empty:
        st.warning(
            f"{len(suppressed)} feature(s) suppressed at some party (fewer rows than its minimum): their pooled "
            "figures leave that party out"
        )
    feature = st.selectbox("Histogram of", list(report["features"]), key="stats_feature")
    bins = queries.histogram_frame(report, feature)
    if bins.empty:
        empty_state(f"No histogram of {feature}: every party suppressed it.")
    else:
        st.altair_chart(charts.histogram(bins, f"{feature} (pooled)"), width="stretch")


catalog_page()

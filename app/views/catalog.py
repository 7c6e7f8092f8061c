"""Data catalog: each party's dataset manifest, contract and last validation (summaries only, never rows)."""

import streamlit as st

from app import charts, queries
from app.page_parts import empty_state, live, sources

st.title("Data catalog")


@live
def catalog_page() -> None:
    rows = queries.validation_rows(sources().store_url)
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


catalog_page()

"""Pieces every page shares: its sources, live refresh, empty states and the run picker."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app.queries import REFRESH_S, Sources
from components.run.summary import RunSummary

LIVE_KEY = "live_refresh"
NO_RUNS = "No runs yet: run `make demo` or `consortia run federation.yaml`, then come back here."


def sources() -> Sources:
    return Sources.from_environment()


def live(body: Callable[[], None]) -> Callable[[], None]:
    """Run ``body`` as a fragment that reruns every few seconds while live refresh is on."""
    return st.fragment(body, run_every=REFRESH_S if st.session_state.get(LIVE_KEY) else None)


def empty_state(message: str) -> None:
    st.info(message, icon=":material/info:")


def pick_run(runs: list[RunSummary], label: str, key: str, default: int = 0) -> RunSummary:
    """A run chosen in a select box; the ``run`` query parameter preselects the first picker's run."""
    ids = [run.run_id for run in runs]
    wanted = st.query_params.get("run") if key == "run" else None
    index = ids.index(wanted) if wanted in ids else min(default, len(ids) - 1)
    chosen = st.selectbox(label, ids, index=index, key=key)
    if key == "run":
        st.query_params["run"] = chosen
    return runs[ids.index(chosen)]

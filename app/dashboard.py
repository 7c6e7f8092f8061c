"""The stakeholder dashboard: one page per question, read-only.

    CONSORTIA_WORKSPACE=.consortia python -m streamlit run app/dashboard.py \
        --server.address 127.0.0.1 --server.headless true --browser.gatherUsageStats false

``CONSORTIA_STORE_URL`` and ``CONSORTIA_TRACKING_URI`` point it at other stores (see ``app.queries``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.page_parts import LIVE_KEY, sources
from app.queries import REFRESH_S, summaries

VIEWS = Path(__file__).parent / "views"  # not "pages/": Streamlit would also treat that as a v1 page folder

VIEW_PAGES = [  # file in views/, title, icon, URL path
    ("overview.py", "Overview", ":material/dashboard:", "overview"),
    ("run.py", "Run", ":material/timeline:", "run"),
    ("parties.py", "Parties", ":material/groups:", "parties"),
    ("contributions.py", "Contributions and rewards", ":material/paid:", "rewards"),
    ("catalog.py", "Data catalog", ":material/dataset:", "catalog"),
    ("models.py", "Models", ":material/model_training:", "models"),
]
st.set_page_config(page_title="Consortia", page_icon=":material/hub:", layout="wide")
navigation = st.navigation(
    [
        st.Page(VIEWS / file, title=title, icon=icon, url_path=path, default=index == 0)
        for index, (file, title, icon, path) in enumerate(VIEW_PAGES)
    ]
)
where = sources()
running = any(run.status == "running" for run in summaries(where))
with st.sidebar:
    st.toggle(f"Live refresh (every {REFRESH_S} s)", value=running, key=LIVE_KEY)
    st.caption(f"Runs: `{where.runs_folder}`  \nStore: `{where.store_url}`  \nRegistry: `{where.tracking_uri}`")
navigation.run()

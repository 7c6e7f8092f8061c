"""Federated descriptive statistics equal pandas' on the pooled rows; a party below the minimum sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from components.adapters.contracts import load_contract
from components.core.config import load_federation_config
from components.core.federated_stats import FeatureStats, Suppressed, bin_edges, feature_stats, pool, quantiles
from components.core.protocol import Kind, decode
from components.run.federation import FederationRun
from flows.stats_cli import print_report
from party_agent.wire_capture import WireCapture
from tests.run_twins import twin_federation, twin_parties

APP = Path(__file__).resolve().parents[1] / "app"


def parts_with_missing(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(3.0, 2.0, size=n) for n in (12, 40, 300, 1000)]
    parts[1][:5] = np.nan  # missing values
    return parts


def test_pooled_statistics_equal_pandas_on_the_pooled_rows() -> None:
    parts = parts_with_missing()
    pooled_rows = pd.Series(np.concatenate(parts))
    first = [feature_stats(p, min_rows=10) for p in parts]
    assert all(isinstance(f, FeatureStats) for f in first)
    pooled = pool(first)  # type: ignore[arg-type]
    edges = bin_edges(pooled.min, pooled.max, 20)  # type: ignore[arg-type]
    pooled = pool([feature_stats(p, min_rows=10, edges=edges) for p in parts])  # type: ignore[misc]

    assert (pooled.count, pooled.missing) == (pooled_rows.count(), pooled_rows.isna().sum())
    assert pooled.sum == pytest.approx(pooled_rows.sum(), rel=1e-12)
    assert pooled.mean == pytest.approx(pooled_rows.mean(), rel=1e-12)
    assert pooled.variance == pytest.approx(pooled_rows.var(), rel=1e-12)
    assert (pooled.min, pooled.max) == (pooled_rows.min(), pooled_rows.max())
    counts, _ = np.histogram(pooled_rows.dropna(), bins=edges)
    assert pooled.histogram == counts.tolist()
    width = edges[1] - edges[0]
    for q, value in zip((0.1, 0.5, 0.9), quantiles(pooled.histogram, edges, [0.1, 0.5, 0.9]), strict=True):
        assert abs(value - pooled_rows.quantile(q)) <= width  # a sketch: within one bin


def test_a_feature_with_fewer_present_values_than_the_minimum_is_suppressed_visibly() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])  # 10 present of 11
    assert isinstance(feature_stats(values, min_rows=10), FeatureStats)
    assert feature_stats(values[1:], min_rows=10) == Suppressed(suppressed="< 10")
    hidden = feature_stats(values, min_rows=10, release_extremes=False)
    assert isinstance(hidden, FeatureStats) and hidden.min is None and hidden.max is None


def test_stats_through_party_agents_equal_pandas_and_a_small_party_sends_no_statistic(tmp_path, monkeypatch) -> None:
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=1)
    small = federation.layout.party_data["gamma"]
    pd.read_csv(small).head(7).to_csv(small, index=False)  # 7 rows: below the default minimum of 10
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "stats", edges=federation.edges)
        try:
            path = run.statistics(bins=10)
        finally:
            run.close()
    report = json.loads(path.read_text())
    print_report(report)  # what `consortia stats` prints
    contract = load_contract("breast_cancer")
    pooled_rows = pd.concat(pd.read_csv(federation.layout.party_data[name]) for name in ("alpha", "beta"))
    assert report["parties"]["gamma"] == 7
    for feature in contract.features:
        entry = report["features"][feature]
        assert entry["parties"]["gamma"] == {"suppressed": "< 10"} and entry["left_out"] == ["gamma"]
        column = pooled_rows[feature]
        assert entry["pooled"]["count"] == len(column)
        assert entry["pooled"]["mean"] == pytest.approx(column.mean(), rel=1e-12)
        assert entry["pooled"]["m2"] / (len(column) - 1) == pytest.approx(column.var(), rel=1e-10)
        assert (entry["pooled"]["min"], entry["pooled"]["max"]) == (column.min(), column.max())
        assert entry["pooled"]["histogram"] == np.histogram(column, bins=entry["edges"])[0].tolist()

    # what left gamma: for every feature, the suppression and nothing else
    sent = [
        decode(frames)[0] for frames in WireCapture.read(federation.layout.party_configs["gamma"].parent / "wire.bin")
    ]
    replies = [envelope for envelope in sent if envelope.kind == Kind.STATS_RESULT]
    assert len(replies) == 2  # two passes
    for reply in replies:
        assert reply.tensors == [] and reply.body["rows"] == 7
        assert reply.body["features"] == {feature: {"suppressed": "< 10"} for feature in contract.features}

    # the dashboard's Data catalog shows the report, with the suppression
    monkeypatch.setenv("CONSORTIA_WORKSPACE", str(federation.workspace.root))
    app = AppTest.from_file(str(APP / "dashboard.py"), default_timeout=120).run()
    app.switch_page("views/catalog.py").run()
    assert not app.exception, app.exception[0].value
    table = app.dataframe[0].value
    assert table["suppressed at"].tolist() == ["gamma (< 10)"] * len(contract.features)
    assert table["count"].tolist() == [len(pooled_rows)] * len(contract.features)
    assert "30 feature(s) suppressed at some party" in app.warning[0].value
    titles = [json.loads(chart.proto.spec).get("title") for chart in app.get("vega_lite_chart")]
    assert f"{contract.features[0]} (pooled)" in titles

"""The stakeholder dashboard: its queries on hand-made records, and every page rendered with Streamlit's AppTest.

Fast tests use a small workspace written here through the real writers (``FederationStore``,
``RunSummary.write``); integration tests render every page over a workspace made by a real federation run.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import charts, queries
from components.adapters.store import FederationStore
from components.adapters.workspace import Workspace
from components.run import lineage
from components.run.summary import ModelReward, Promotion, RoundMetrics, RoundRow, RunSummary, ValuationReport
from tests.dashboard_workspace import demo_workspace, hand_made_card

APP = Path(__file__).resolve().parents[1] / "app"
VIEWS = ["overview", "run", "parties", "contributions", "catalog", "models"]
STARTED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _round(number: int, participants: list[str], accuracy: float, **fields) -> RoundRow:
    return RoundRow(
        round=number,
        participants=participants,
        metrics=RoundMetrics(accuracy=accuracy, roc_auc=accuracy + 0.05, loss=1 - accuracy),
        bytes_up=1000 * len(participants),
        bytes_down=2000,
        seconds=1.5,
        **fields,
    )


def _summary(run_id: str = "run-small", **fields) -> RunSummary:
    values = {
        "run_id": run_id,
        "status": "completed",
        "started_at": STARTED.isoformat(),
        "finished_at": (STARTED + timedelta(seconds=90)).isoformat(),
        "config": {
            "name": "clinics",
            "rounds": 2,
            "parties": [{"name": "a"}, {"name": "b"}],
            "promotion": {"model_name": "clinics-model"},
        },
        "rounds": [
            _round(1, ["a"], 0.70, rejected={"b": "update norm 9.0 above 5.0"}, epsilon=0.5),
            _round(2, ["a", "b"], 0.80, epsilon=1.0),
        ],
    }
    return RunSummary(**(values | fields))


def _render(workspace: Path, view: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CONSORTIA_WORKSPACE", str(workspace))
    monkeypatch.delenv("CONSORTIA_STORE_URL", raising=False)
    monkeypatch.delenv("CONSORTIA_TRACKING_URI", raising=False)
    app = AppTest.from_file(APP / "dashboard.py", default_timeout=120).run()
    if view != "overview":
        app.switch_page(f"views/{view}.py").run()
    assert not app.exception, app.exception[0].value
    return app


def _chart_titles(app: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec).get("title") for chart in app.get("vega_lite_chart")]


def _texts(app: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "success", "warning", "error", "header", "subheader", "title")
    return "\n".join(str(element.value) for kind in kinds for element in getattr(app, kind))


# ---- queries on hand-made records ----


def test_runs_frame_shows_best_accuracy_progress_and_duration():
    running = _summary(status="running", finished_at=None, config=_summary().config | {"rounds": 3})

    frame = queries.runs_frame([running], now=STARTED + timedelta(seconds=45))

    row = frame.iloc[0]
    assert (row.run_id, row.status, row.rounds, row.parties) == ("run-small", "running", "2/3", 2)
    assert row.best_accuracy == 0.80 and pd.isna(row.final_accuracy)
    assert row.duration_s == 45.0


def test_rejections_and_message_counts_name_the_party():
    run = _summary(rejected_messages={"b": 1}, late_messages={"a": 0})

    rejected = queries.rejections_frame([run])
    counts = queries.message_counts_frame(run)

    assert rejected.to_dict("records") == [
        {"run_id": "run-small", "round": 1, "party": "b", "reason": "update norm 9.0 above 5.0"}
    ]
    assert counts.to_dict("records") == [{"party": "b", "rejected": 1, "late": 0}]


def test_totals_frame_splits_the_pool_and_names_reward_models():
    run = _summary(
        contributions={"a": 0.03, "b": 0.01},
        rewards={"a": 75.0, "b": 25.0},
        model_rewards={"a": ModelReward(sources=["a", "b"], accuracy=0.9)},
    )

    totals = queries.totals_frame(run)

    assert totals["party"].tolist() == ["a", "b"]
    assert totals["reward_share"].tolist() == [0.75, 0.25]
    assert totals.loc[0, "model_from"] == "a, b" and pd.isna(totals.loc[1, "model_from"])


def test_totals_frame_shows_errors_ranks_and_the_reward_models_task_metrics():
    run = _summary(
        contributions={"a": 0.03, "b": 0.029},
        rewards={"a": 50.0, "b": 50.0},
        model_rewards={"a": ModelReward(sources=["a", "b"], accuracy=0.9, metrics={"accuracy": 0.9, "loss": 0.3})},
        valuation=ValuationReport(method="exact", utility="u", errors={"a": 0.002, "b": 0.002}, ranks={"a": 1, "b": 1}),
    )

    totals = queries.totals_frame(run)

    assert totals["error"].tolist() == [0.004, 0.004] and totals["rank"].tolist() == [1, 1]
    assert totals.loc[0, "model_accuracy"] == 0.9 and totals.loc[0, "model_loss"] == 0.3
    assert pd.isna(totals.loc[1, "model_loss"])


def test_parties_frame_online_now_needs_a_recent_heartbeat_to_a_running_run():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    naive = now.replace(tzinfo=None)  # SQLite gives times back without their zone

    def row(name: str, status: str, seconds_ago: float | None) -> dict:
        seen = None if seconds_ago is None else naive - timedelta(seconds=seconds_ago)
        return {"name": name, "status": status, "last_seen": seen, "reputation": 0.5, "resources": {"cores": 2}}

    rows = [row("a", "online", 10), row("b", "online", 40), row("c", "offline", 5), row("d", "offline", None)]

    frame = queries.parties_frame(rows, run_live=True, now=now)

    assert frame["online_now"].tolist() == [True, False, False, False]
    assert frame["status"].tolist() == ["online", "offline", "offline", "offline"]  # b's online is 40 s stale
    assert frame["seconds_ago"].tolist()[:3] == [10.0, 40.0, 5.0]
    assert frame["cores"].tolist() == [2, 2, 2, 2]
    # no run is running (it completed, failed, or its coordinator died): nobody is online, whatever was stored
    after = queries.parties_frame(rows, run_live=False, now=now)
    assert after["online_now"].tolist() == [False] * 4 and after["status"].tolist() == ["offline"] * 4


def test_refusals_count_every_run_whatever_its_status_and_say_which_runs():
    failed = _summary(run_id="run-flood", status="failed", rounds=[], rejected_messages={"m": 1962})
    clean = _summary(run_id="run-clean", rounds=[_round(1, ["a"], 0.7)], late_messages={"a": 0})
    refused = _summary()  # round 1 refused b's update

    frame = queries.refusals_frame([failed, clean, refused])

    assert frame.to_dict("records") == [
        {"run_id": "run-flood", "status": "failed", "party": "m", "refused": 1962, "late": 0, "rounds_refused": 0},
        {"run_id": "run-small", "status": "completed", "party": "b", "refused": 0, "late": 0, "rounds_refused": 1},
    ]
    assert queries.runs_covered([failed, clean, refused]) == "3 runs: 2 completed, 1 failed"
    assert queries.runs_covered([]) == "0 runs"


def test_catalog_keeps_each_partys_newest_validation():
    def validation(run_id: str, rows: int, success: bool) -> dict:
        outcomes = [{"expectation": "expect_column_values_to_not_be_null", "column": "age", "success": success}]
        return {
            "run_id": run_id,
            "party": "a",
            "success": int(success),
            "summary": {
                "contract": "clinic",
                "version": 2,
                "success": success,
                "row_count": rows,
                "outcomes": outcomes,
            },
            "manifest": {
                "content_hash": f"hash-{rows}",
                "rows": rows,
                "columns": {"age": "int64"},
                "contract": "clinic",
            },
            "started_at": None,
        }

    newest_first = [validation("run-2", 120, False), validation("run-1", 100, True)]

    catalog = queries.catalog_frame(newest_first)

    assert catalog[["party", "rows", "content_hash", "passed", "validated_in"]].to_dict("records") == [
        {"party": "a", "rows": 120, "content_hash": "hash-120", "passed": False, "validated_in": "run-2"}
    ]
    assert catalog.loc[0, "failed"] == "expect_column_values_to_not_be_null(age)"
    assert catalog.loc[0, "expectations"] == "0/1"


def test_lineage_links_each_version_to_its_run_and_manifests():
    versions = pd.DataFrame(
        [{"model": "m", "version": 2, "aliases": "champion", "run_id": "run-a", "manifests": "a:0123456789abcdef"}]
    )

    dot = charts.lineage_dot(versions)

    assert '"m v2\\n@champion" -> "run run-a";' in dot
    assert '"run run-a" -> "a\\n0123456789ab";' in dot


def test_app_reads_through_components_only():
    forbidden = {"flows", "party_agent", "sqlalchemy", "mlflow", "prefect", "zmq"}
    imported = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "components" in imported
    assert not imported & forbidden


# ---- pages ----


@pytest.fixture
def small_workspace(tmp_path: Path) -> Path:
    """One finished run of two rounds between parties a and b, written by the real writers."""
    workspace = Workspace.at(tmp_path).create()
    store = FederationStore(workspace.store_url)
    run = _summary(
        contributions={"a": 0.03, "b": 0.01},
        round_contributions={1: {"a": 0.02}, 2: {"a": 0.01, "b": 0.01}},
        valuation_method="tmc_shapley",
        rewards={"a": 60.0, "b": 40.0},
        reputation={"a": 0.62, "b": 0.48},
        promotion=Promotion(
            decision="promoted", reason="no current champion", model_name="clinics-model", version=1, champion_version=1
        ),
        validation={p: {"success": True, "row_count": 10, "outcomes": []} for p in ("a", "b")},
        manifests={"a": "dvc-hash-a", "b": "dvc-hash-b"},
    )
    store.start_run(run.run_id, "clinics", run.config)
    for party, rows, success in (("a", 120, True), ("b", 80, False)):
        store.upsert_party(party, "k" * 40)
        store.mark_party(party, "online", {"cores": 4, "memory_mb": 1024.0})
        outcomes = [{"expectation": "expect_column_values_to_not_be_null", "column": "age", "success": success}]
        summary = {"contract": "clinic", "version": 2, "success": success, "row_count": rows, "outcomes": outcomes}
        manifest = {"content_hash": f"sha-{party}", "rows": rows, "columns": {"age": "int64"}, "contract": "clinic"}
        store.record_validation(run.run_id, party, success, summary, manifest)
        inputs = {"rounds_answered": 2 if party == "a" else 1, "rounds_missed": 0 if party == "a" else 1}
        store.record_reputation(run.run_id, party, run.reputation[party], inputs | {"rejected_messages": 0})
    run.write(workspace.summary_path(run.run_id))
    store.finish_run(run.run_id, "completed", None, str(workspace.summary_path(run.run_id)))
    store.engine.dispose()
    return tmp_path


@pytest.mark.parametrize(
    ("view", "hint"),
    [
        ("overview", "make demo"),
        ("run", "make demo"),
        ("parties", "No party registered yet"),
        ("contributions", "make demo"),
        ("catalog", "No dataset validated yet"),
        ("models", "make demo"),
    ],
)
def test_empty_workspace_pages_say_what_to_run_and_create_nothing(view, hint, tmp_path, monkeypatch):
    app = _render(tmp_path, view, monkeypatch)

    assert any(hint in info.value for info in app.info)
    assert list(tmp_path.iterdir()) == []  # read-only: no store was created by looking


def test_overview_counts_runs_and_names_the_latest(small_workspace, monkeypatch):
    app = _render(small_workspace, "overview", monkeypatch)

    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Runs"] == "1" and metrics["Latest run's best accuracy"] == "0.8000"
    assert "Latest run: **run-small** (completed)" in _texts(app)
    assert app.dataframe[0].value["best_accuracy"].tolist() == [0.80]
    assert "Best accuracy per run" in _chart_titles(app)


def test_run_page_shows_rounds_privacy_refusals_and_promotion(small_workspace, monkeypatch):
    app = _render(small_workspace, "run", monkeypatch)

    texts = _texts(app)
    assert "run-small" in texts and "1 update(s) refused or missing in this run" in texts
    assert "**promoted**: registered clinics-model v1, @champion is v1. no current champion" in texts
    assert {"Global accuracy and ROC AUC", "Participants per round", "Privacy: epsilon"} <= set(_chart_titles(app))
    rounds = next(df.value for df in app.dataframe if "accuracy" in df.value.columns)
    assert rounds["accuracy"].tolist() == [0.70, 0.80] and rounds["participants"].tolist() == [1, 2]


def test_contributions_page_shows_split_and_method(small_workspace, monkeypatch):
    app = _render(small_workspace, "contributions", monkeypatch)

    totals = app.dataframe[0].value
    assert totals["reward_share"].tolist() == [0.6, 0.4]
    assert "Valuation method: **tmc_shapley**" in _texts(app)
    assert "Reward split" in _chart_titles(app) and "Contribution per party per round" in _chart_titles(app)


def test_parties_page_shows_reputation_history_and_counts(small_workspace, monkeypatch):
    app = _render(small_workspace, "parties", monkeypatch)

    parties = app.dataframe[0].value
    assert parties["party"].tolist() == ["a", "b"]
    assert parties["reputation"].tolist() == [0.62, 0.48]
    assert parties["rounds_missed"].tolist() == [0, 1]
    assert parties["online_now"].tolist() == [False, False]  # the run completed: nobody sends heartbeats now
    assert parties["status"].tolist() == ["offline", "offline"]
    assert "Reputation after each run" in _chart_titles(app)
    assert "add up the 1 completed run(s) of 1 run: 1 completed" in _texts(app)
    refusals = app.dataframe[1].value
    assert refusals[["run_id", "party", "rounds_refused"]].values.tolist() == [["run-small", "b", 1]]
    assert "update norm 9.0 above 5.0" in app.dataframe[2].value["reason"].tolist()


def test_pages_count_failed_and_interrupted_runs_and_no_party_online_without_a_live_run(small_workspace, monkeypatch):
    workspace = Workspace.at(small_workspace)
    store = FederationStore(workspace.store_url)
    flood = _summary(run_id="run-flood", status="failed", rounds=[], rejected_messages={"b": 1962})
    flood.write(workspace.summary_path("run-flood"))
    store.start_run("run-flood", "clinics", flood.config)
    store.finish_run("run-flood", "failed", None, str(workspace.summary_path("run-flood")))
    dead = _summary(run_id="run-dead", status="running", finished_at=None, started_at=datetime.now(UTC).isoformat())
    dead.write(workspace.summary_path("run-dead"))
    store.start_run("run-dead", "clinics", dead.config)
    (workspace.checkpoints / "run-dead").mkdir(parents=True)  # its coordinator was killed: nobody holds the lease
    store.mark_party("a", "online")  # a fresh heartbeat left behind by the dead coordinator
    store.engine.dispose()

    overview = _render(small_workspace, "overview", monkeypatch)
    metrics = {metric.label: metric.value for metric in overview.metric}
    assert metrics["Runs"] == "3" and metrics["Running now"] == "0" and metrics["Parties online now"] == "0/2"
    statuses = dict(zip(overview.dataframe[0].value["run_id"], overview.dataframe[0].value["status"], strict=True))
    assert statuses == {"run-dead": "interrupted", "run-flood": "failed", "run-small": "completed"}

    parties = _render(small_workspace, "parties", monkeypatch)
    assert parties.dataframe[0].value["status"].tolist() == ["offline", "offline"]
    refusals = parties.dataframe[1].value
    assert ["run-flood", "failed", "b", 1962] in refusals[["run_id", "status", "party", "refused"]].values.tolist()
    assert "3 runs: 1 completed, 1 failed, 1 interrupted" in _texts(parties)


def test_catalog_page_flags_failing_contracts(small_workspace, monkeypatch):
    app = _render(small_workspace, "catalog", monkeypatch)

    catalog = app.dataframe[0].value
    assert catalog["rows"].tolist() == [120, 80] and catalog["passed"].tolist() == [True, False]
    assert app.error[0].value == "Failing contracts: b: expect_column_values_to_not_be_null(age)"


def test_models_page_without_registry_says_what_registers_one(small_workspace, monkeypatch):
    app = _render(small_workspace, "models", monkeypatch)

    assert "No model registered yet (models: clinics-model)" in app.info[0].value


def test_live_refresh_turns_on_while_a_run_is_running(small_workspace, monkeypatch):
    running = _summary(run_id="run-live", status="running", finished_at=None, started_at=datetime.now(UTC).isoformat())
    running.write(Workspace.at(small_workspace).summary_path("run-live"))

    app = _render(small_workspace, "run", monkeypatch)

    assert app.toggle[0].value is True
    assert app.selectbox[0].value == "run-live"
    assert {metric.label: metric.value for metric in app.metric}["Best accuracy so far"] == "0.8000"


# ---- a real federation run ----


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, RunSummary]:
    return demo_workspace(tmp_path_factory)


@pytest.mark.integration
@pytest.mark.parametrize("view", VIEWS)
def test_every_page_renders_the_real_runs_numbers(view, demo, monkeypatch):
    root, run = demo

    app = _render(root, view, monkeypatch)

    texts = _texts(app)
    frames = [element.value for element in app.dataframe]
    if view == "overview":
        assert f"Latest run: **{run.run_id}**" in texts
        assert frames[0]["best_accuracy"].tolist() == [max(r.metrics.accuracy for r in run.rounds)]
    elif view == "run":
        metrics = {metric.label: metric.value for metric in app.metric}
        assert app.header[0].value == run.run_id
        assert metrics["Final accuracy"] == f"{run.final_metrics.accuracy:.4f}"
        assert metrics["Rounds"] == f"{len(run.rounds)}/{len(run.rounds)}"
        assert run.promotion.reason in texts
        rounds = next(frame for frame in frames if "bytes_up" in frame.columns)
        assert rounds["bytes_up"].tolist() == [r.bytes_up for r in run.rounds]
    elif view == "parties":
        assert frames[0]["party"].tolist() == sorted(run.reputation)
        assert frames[0]["reputation"].tolist() == [run.reputation[p] for p in sorted(run.reputation)]
        assert frames[0]["rounds_joined"].tolist() == [len(run.rounds)] * len(run.reputation)
        assert f"Latest update after run **{run.run_id}**" in texts
    elif view == "contributions":
        assert app.subheader[0].value == run.run_id
        assert dict(zip(frames[0]["party"], frames[0]["contribution"], strict=True)) == run.contributions
        assert f"Valuation method: **{run.valuation_method}**" in texts
    elif view == "catalog":
        assert frames[0]["rows"].tolist() == [run.validation[p]["row_count"] for p in sorted(run.validation)]
        assert f"Latest validation in run **{run.run_id}**" in texts
    else:
        versions, data = frames[0], frames[-1]
        assert versions["run_id"].tolist() == [run.run_id]
        assert versions["version"].tolist() == [run.promotion.version]
        assert sorted(versions["aliases"].tolist()[0].split(", ")) == ["challenger", "champion"]  # challenger first
        assert versions["contract"].tolist() == [
            f"{run.config['contract']['name']}@v{run.config['contract']['version']}"
        ]
        assert data["rows_validated"].tolist() == [run.validation[p]["row_count"] for p in sorted(run.validation)]
        assert f"# Model card: {run.promotion.model_name}" in texts
        party_metrics, _, _ = lineage.party_evaluation(run)  # empty unless the run evaluated on the parties' rows
        if party_metrics:
            assert frames[1]["party"].tolist() == sorted(party_metrics)
        else:
            assert f"Version {run.promotion.version}: {lineage.NOT_PER_PARTY} (no fairness gap)." in texts
    assert app.get("vega_lite_chart") or app.get("graphviz_chart")


def test_run_page_of_a_run_refused_by_its_parties_names_each_decision(tmp_path, monkeypatch):
    workspace = Workspace.at(tmp_path).create()
    reason = "the plan was accepted by 1 parties, min_parties is 2: a: accept; b: reject (owner): not this quarter"
    run = _summary(
        status="failed",
        error=f"PolicyRefusal: {reason}",
        rounds=[],
        plan_decisions={
            "a": {"verdict": "accept", "rule": None, "reason": "keeps every rule", "decided_by": "policy"},
            "b": {"verdict": "reject", "rule": "owner", "reason": "not this quarter", "decided_by": "person"},
        },
    )
    run.write(workspace.summary_path(run.run_id))

    app = _render(tmp_path, "run", monkeypatch)

    assert f"Failed: PolicyRefusal: {reason}" in _texts(app)
    decisions = next(df.value for df in app.dataframe if "decision" in df.value.columns)
    assert decisions.to_dict("records") == [
        {"party": "a", "decision": "accept", "rule": "", "reason": "keeps every rule", "by": "policy"},
        {"party": "b", "decision": "reject", "rule": "owner", "reason": "not this quarter", "by": "person"},
    ]


# ---- models page: versions with their card, per-party metrics and fairness gap ----


@pytest.fixture
def registered_workspace(small_workspace: Path) -> Path:
    """The small workspace with two versions in a real MLflow registry: v1 without per-party metrics, v2 (the
    champion) with them and a fairness gap; each card is a JSON artifact of its MLflow run."""
    from mlflow import MlflowClient

    from components.adapters.tracking import RunTracker

    uri = Workspace.at(small_workspace).tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("clinics-model")
    party_metrics = {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.7}}
    gap = lineage.FairnessGapCard(weighted_mean=0.825, worst_party="b", worst_value=0.7, gap=0.125)
    cards = [
        hand_made_card(metrics={"accuracy": 0.8}),
        hand_made_card(
            metrics={"accuracy": 0.85},
            party_metrics=party_metrics,
            party_examples={"a": 30, "b": 18},
            fairness_gaps={"accuracy": gap},
        ),
    ]
    for card in cards:
        tracker = RunTracker(uri, "clinics")
        run_id = tracker.start(card.run_id, {})
        tracker.log_json(card.model_dump(mode="json"), lineage.CARD_JSON)
        tracker.finish()
        tags = {lineage.RUN_ID: card.run_id, "metric.accuracy": repr(card.metrics["accuracy"])}
        tags |= {lineage.MODEL_CARD: lineage.CARD_JSON, lineage.CODE_SOURCE: "git", lineage.CODE_VERSION: "ab" * 20}
        client.create_model_version("clinics-model", f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    client.set_registered_model_alias("clinics-model", "champion", "2")
    return small_workspace


def test_models_page_shows_the_champions_card_per_party_metrics_and_fairness_gap(registered_workspace, monkeypatch):
    app = _render(registered_workspace, "models", monkeypatch)

    versions, parties, gaps, data = (element.value for element in app.dataframe[:4])
    assert versions["version"].tolist() == [2, 1] and versions["aliases"].tolist() == ["champion", ""]
    assert versions["code"].tolist() == ["abababababab"] * 2
    assert app.selectbox[0].value == "v2 @champion (accuracy=0.85, run run-small)"
    assert parties.to_dict("records") == [
        {"party": "a", "rows": 30, "accuracy": 0.9},
        {"party": "b", "rows": 18, "accuracy": 0.7},
    ]
    assert {metric.label: metric.value for metric in app.metric} == {"Fairness gap: accuracy": "0.1250"}
    assert gaps.to_dict("records") == [
        {"metric": "accuracy", "gap": 0.125, "worst_party": "b", "worst_value": 0.7, "weighted_mean": 0.825}
    ]
    assert data["rows_validated"].tolist() == [120, 80]
    assert "# Model card: clinics-model" in _texts(app)

    app.selectbox[0].set_value("v1 (accuracy=0.8, run run-small)").run()

    assert f"Version 1: {lineage.NOT_PER_PARTY} (no fairness gap)." in [info.value for info in app.info]
    assert not app.metric

"""A promotion held for approval: the real Prefect flow run pauses (the session's Prefect server) with the typed
form, `consortia approve` (a real subprocess) answers it through Prefect's API, and the run moves `champion`
only then. The party agents are threads and the other edges twins, so the test costs one short run each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from components.core.config import dump_yaml, load_federation_config
from components.run.summary import RunSummary
from flows.approval import paused_flow_run
from flows.federation import run_federation
from tests.federation_helpers import run_consortia, wait_until
from tests.run_twins import TwinFederation, twin_federation, twin_parties

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(autouse=True)
def session_server(prefect_server: str) -> Iterator[str]:
    """This process's Prefect talks to the session's server too (its settings were read before it started)."""
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield prefect_server


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> TwinFederation:
    federation = twin_federation(tmp_path_factory.mktemp("approval") / "ws", parties=2, rounds=1, round_timeout_s=60)
    config = load_federation_config(federation.config_path)
    config.promotion.approval = "required"
    dump_yaml(config, federation.config_path)
    return federation


def _answered_run(
    server: str, federation: TwinFederation, config: Path, run_id: str, *answer: str
) -> tuple[str, RunSummary]:
    """Run ``run_id`` of ``config`` in a thread until its flow run pauses, answer with `consortia approve RUN_ID
    *answer`, and return the command's output and the run's summary once it finished."""
    model = load_federation_config(config).promotion.model_name
    registry = federation.edges.registry
    champion_before = registry.version_by_alias(model, "champion")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with temporary_settings(updates={PREFECT_API_URL: server}):  # a thread starts with no settings context
                run_federation(config, federation.workspace.root, run_id, edges=federation.edges)
        except BaseException as error:  # shown by the assertion below
            failures.append(error)

    with twin_parties(federation):
        thread = threading.Thread(target=run, name=f"flow-{run_id}", daemon=True)
        thread.start()
        wait_until(lambda: not thread.is_alive() or paused_flow_run(run_id) is not None, 300, f"{run_id} to pause")
        assert not failures, failures
        held = RunSummary.read(federation.workspace.summary_path(run_id)).promotion
        assert held is not None and held.awaiting_approval and held.reason.endswith("held for approval")
        assert registry.version_by_alias(model, "champion") == champion_before  # nothing moved while held
        assert registry.version_by_alias(model, "challenger").version == held.version
        answered = run_consortia("approve", run_id, *answer, workspace=federation.workspace.root, timeout=180)
        thread.join(timeout=180)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert not thread.is_alive() and not failures, failures
    return answered.stdout, RunSummary.read(federation.workspace.summary_path(run_id))


def _flow_run_state(run_id: str) -> str:
    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_id])))
    return flow_run.state.type.value


def test_a_held_promotion_waits_in_a_paused_flow_run_and_moves_champion_once_approved(
    session_server: str, federation: TwinFederation
):
    answer = ("--reviewer", "ann", "--comment", "gap is fine")
    output, summary = _answered_run(session_server, federation, federation.config_path, "approved-run", *answer)
    promotion = summary.promotion
    assert "approved: run approved-run resumes" in output and "promotion: promoted" in output
    assert summary.status == "completed" and promotion.decision == "promoted"
    assert (promotion.approval.approve, promotion.approval.reviewer, promotion.approval.comment) == (
        True,
        "ann",
        "gap is fine",
    )
    assert promotion.reason.endswith("approved by ann: gap is fine")
    model = promotion.model_name
    assert federation.edges.registry.version_by_alias(model, "champion").version == promotion.version
    version_tags = federation.edges.registry.versions(model)[promotion.version - 1].tags
    assert (version_tags["promotion.decision"], version_tags["promotion.reviewer"]) == ("promoted", "ann")
    run_tags = federation.tracker.runs[summary.mlflow_run_id].tags
    assert run_tags["promotion.gate.approval"] == "passed: approved by ann: gap is fine"
    assert _flow_run_state("approved-run") == "COMPLETED"


def test_a_denied_promotion_keeps_the_champion_where_it_is_and_records_who_denied_it(
    session_server: str, federation: TwinFederation
):
    config = load_federation_config(federation.config_path)
    config.promotion.model_name = "denied-model"  # no champion yet: the gates pass and the run asks
    path = dump_yaml(config, federation.config_path.with_name("denied.yaml"))
    output, summary = _answered_run(
        session_server, federation, path, "denied-run", "--deny", "--reviewer", "bo", "--comment", "wait"
    )
    assert "denied: run denied-run resumes" in output and "promotion: kept" in output
    assert summary.promotion.decision == "kept" and summary.promotion.reason == "denied by bo: wait"
    assert summary.promotion.champion_version is None
    assert federation.edges.registry.version_by_alias("denied-model", "champion") is None
    assert federation.edges.registry.version_by_alias("denied-model", "challenger").version == 1
    assert _flow_run_state("denied-run") == "COMPLETED"


def test_a_promotion_nobody_answers_keeps_the_champion_and_the_run_completes(
    session_server: str, federation: TwinFederation
):
    config = load_federation_config(federation.config_path)
    config.promotion.model_name, config.promotion.approval_timeout_s = "unanswered-model", 3
    path = dump_yaml(config, federation.config_path.with_name("unanswered.yaml"))
    with twin_parties(federation), temporary_settings(updates={PREFECT_API_URL: session_server}):
        run_federation(path, federation.workspace.root, "unanswered-run", edges=federation.edges)
    summary = RunSummary.read(federation.workspace.summary_path("unanswered-run"))
    assert summary.status == "completed" and summary.promotion.decision == "kept"
    assert summary.promotion.reason == "approval required and none given within 3 s"
    assert federation.edges.registry.version_by_alias("unanswered-model", "champion") is None
    assert _flow_run_state("unanswered-run") == "COMPLETED"


def test_approve_says_when_no_run_is_waiting(tmp_path: Path):
    answered = run_consortia("approve", "no-such-run", workspace=tmp_path, timeout=120)
    assert answered.returncode == 1
    assert "no flow run 'no-such-run' is paused for approval" in answered.stdout

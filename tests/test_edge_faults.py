"""Faults at the edges decide retries through the error tree: a transient one (tracking unreachable once, the store
locked once, metadata locked once, a failed send) is retried by Prefect and the run ends with the model of an
undisturbed run; a permanent one fails the run at once with its typed error.

The run goes through the real Prefect flow (the session's Prefect server) in this process, with the party agents on
threads and every edge a twin, so each fault hits exactly one call. How each adapter maps its library's errors
(MLflow, SQLAlchemy, DVC, zmq) onto these two errors is tested against the real libraries in test_adapter_errors.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints
from components.core.errors import EdgeFailure, EdgeUnavailable
from components.core.params import Params
from components.run.summary import RunSummary
from components.twins.transport import MemoryNetwork, MemoryRouter
from flows.federation import run_federation
from tests.run_twins import TwinFederation, fresh_edges, twin_federation, twin_parties

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
ROUNDS = 2


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> TwinFederation:
    return twin_federation(tmp_path_factory.mktemp("faults") / "ws", parties=3, rounds=ROUNDS, min_parties=3)


def _with_fresh_twins(federation: TwinFederation, router: Callable[..., Any] | None = None) -> TwinFederation:
    network = MemoryNetwork()
    edges = fresh_edges(network)
    if router is not None:
        edges.router = router(network)
    return dataclasses.replace(federation, network=network, edges=edges)


def _run(federation: TwinFederation, run_id: str) -> Params:
    with twin_parties(federation):
        run_federation(federation.config_path, federation.workspace.root, run_id, edges=federation.edges)
    return RunCheckpoints(federation.workspace.checkpoints, run_id).load_global(ROUNDS)


@pytest.fixture(scope="module")
def undisturbed(federation: TwinFederation) -> Params:
    return _run(_with_fresh_twins(federation), "undisturbed")


def _assert_same_model(final: Params, expected: Params) -> None:
    assert sorted(final) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(final[name], expected[name], rtol=1e-6, atol=1e-7)


def _train_send_fails_once(network: MemoryNetwork) -> Callable[..., MemoryRouter]:
    """A router whose first send of a training request fails as the real router's does when it cannot queue."""

    def router(*args: Any, **kwargs: Any) -> MemoryRouter:
        real = network.router(*args, **kwargs)
        send = real.send
        failed: list[bool] = []

        def flaky_send(routing_id: bytes, frames: Sequence[Any]) -> bool:
            kind = json.loads(bytes(frames[0]))["kind"]
            if kind == "train" and not failed:
                failed.append(True)
                raise EdgeUnavailable("transport", "the outbox stayed full for 2 s")
            return send(routing_id, frames)

        real.send = flaky_send  # type: ignore[method-assign]
        return real

    return router


TRANSIENT = {
    "tracking unreachable for one call": ("tracker", "log_metrics", EdgeUnavailable("tracking", "connection refused")),
    "store locked for one call": ("store", "record_round", EdgeUnavailable("store", "database is locked")),
    "metadata locked for one call": ("metadata", "track", EdgeUnavailable("metadata", "unable to acquire lock")),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_a_transient_edge_fault_is_retried_and_the_model_is_unchanged(federation, undisturbed, fault):
    edge, method, error = TRANSIENT[fault]
    disturbed = _with_fresh_twins(federation)
    getattr(disturbed.edges, edge).fail_next(method, error)
    run_id = f"transient-{edge}"
    final = _run(disturbed, run_id)
    assert getattr(disturbed.edges, edge).pending_faults() == {}  # the fault did strike
    assert getattr(disturbed.edges, edge).calls.count(method) >= 2  # ... and the call was made again
    assert RunSummary.read(federation.workspace.summary_path(run_id)).status == "completed"
    _assert_same_model(final, undisturbed)


def test_a_failed_send_fails_the_round_which_is_retried_with_the_same_model(federation, undisturbed):
    disturbed = _with_fresh_twins(federation, router=_train_send_fails_once)
    final = _run(disturbed, "transient-send")
    summary = RunSummary.read(federation.workspace.summary_path("transient-send"))
    assert summary.status == "completed"
    assert [sorted(r.participants) for r in summary.rounds] == [["alpha", "beta", "gamma"]] * ROUNDS
    _assert_same_model(final, undisturbed)


def test_a_permanent_edge_fault_fails_the_run_at_once_with_its_typed_error(federation):
    disturbed = _with_fresh_twins(federation)
    disturbed.edges.tracker.fail_next("log_metrics", EdgeFailure("tracking", "INVALID_PARAMETER_VALUE: bad metric"))
    with pytest.raises(EdgeFailure, match="INVALID_PARAMETER_VALUE"):
        _run(disturbed, "permanent-tracking")
    assert disturbed.edges.tracker.calls.count("log_metrics") == 1  # not retried
    summary = RunSummary.read(federation.workspace.summary_path("permanent-tracking"))
    assert summary.status == "failed"
    assert [r.round for r in summary.rounds] == [1]  # the summary was written before the tracker call failed

"""The coordinator trusts no claim it can check: example counts bounded by the rows validated this run, and a
configurable cap on one party's share of the aggregate."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from components.adapters.checkpoints import RunCheckpoints
from components.core.claims import bounded_examples, cap_shares
from components.core.config import load_federation_config
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from tests.run_twins import twin_federation, twin_parties


def test_an_example_count_is_at_most_the_rows_validated():
    assert bounded_examples(10**9, 120) == 120
    assert bounded_examples(80, 120) == 80


def test_the_largest_weights_are_lowered_to_the_cap_and_the_others_kept():
    capped = cap_shares({"a": 1, "b": 1, "c": 8}, 0.5)
    assert capped == {"a": 1.0, "b": 1.0, "c": 2.0}
    assert capped["c"] / sum(capped.values()) == 0.5
    # two parties over the cap share one level: 0.4 of the new sum each
    capped = cap_shares({"a": 1, "b": 9, "c": 9}, 0.4)
    assert capped == pytest.approx({"a": 1.0, "b": 2.0, "c": 2.0})
    assert max(capped.values()) / sum(capped.values()) == pytest.approx(0.4)


def test_weights_within_the_cap_are_unchanged_and_an_impossible_cap_means_equal_weights():
    assert cap_shares({"a": 3, "b": 3, "c": 4}, 0.5) == {"a": 3, "b": 3, "c": 4}
    assert cap_shares({"a": 1, "b": 9}, 0.5) == {"a": 1.0, "b": 1.0}
    assert cap_shares({"a": 1, "b": 9, "c": 5}, 0.2) == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_the_cap_cannot_be_combined_with_secure_aggregation(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=1)
    config = load_federation_config(federation.config_path)
    data = config.model_dump(mode="json")
    data.update(max_party_weight=0.5, secure_aggregation={"enabled": True})
    with pytest.raises(ValidationError, match="max_party_weight"):
        type(config).model_validate(data)


def _lying(train):
    """A party's training that claims 1000 times the rows it trained on: a lie that looks plausible."""

    def lie(request, tensors):
        kind, body, params = train(request, tensors)
        return kind, {**body, "num_examples": body["num_examples"] * 1000}, params

    return lie


def _run(root, liar: str | None):
    federation = twin_federation(root, parties=3, rounds=2)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation) as agents:
        for agent in agents:
            if agent.config.name == liar:
                agent._train = _lying(agent._train)
        run = FederationRun(config, federation.workspace, "claims", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    checkpoints = RunCheckpoints(federation.workspace.checkpoints, "claims")
    return run.summary, checkpoints.load_global(2), checkpoints.load_updates(1)


def test_a_party_claiming_more_examples_than_it_validated_weighs_its_rows_and_the_result_is_the_honest_one(
    tmp_path,
):
    honest, honest_model, _ = _run(tmp_path / "honest", liar=None)
    lied, lied_model, updates = _run(tmp_path / "lied", liar="gamma")
    assert lied.status == "completed"
    assert [sorted(r.participants) for r in lied.rounds] == [["alpha", "beta", "gamma"]] * 2
    weights = {u.party: u.num_examples for u in updates}
    assert weights["gamma"] == lied.validation["gamma"]["row_count"]  # not 1000 times it
    assert lied.rejected_messages == {"gamma": 2}  # one refused claim per round
    assert honest.rejected_messages == {}
    for name, array in honest_model.items():
        np.testing.assert_allclose(lied_model[name], array, rtol=1e-6, atol=1e-7, err_msg=name)
    assert lied.final_metrics == honest.final_metrics

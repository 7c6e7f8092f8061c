"""The promotion policy: federated evaluation (per-party metrics, fairness gap), the gates, challenger and champion,
approval by a person, and a promotion that moves alias, tags and the DVC record together or not at all.

The promoter's rules are tested alone over the registry and metadata twins (numbers a person can check); a whole run
over twins shows the fairness gate blocking a real candidate. The approval through a real, paused Prefect flow run
answered by `consortia approve` is in test_promotion_approval.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints
from components.core.config import PromotionConfig, load_federation_config
from components.core.errors import EdgeUnavailable
from components.core.fairness import PartyMetrics, fairness_gap, federated_evaluation
from components.core.gates import Approval, promotion_gates
from components.core.splits import ValidationSplit
from components.run.federation import FederationRun
from components.run.promoter import Candidate, Promoter
from components.twins.tracking import MemoryRegistry
from components.twins.versioning import MemoryMetadata
from flows.federation import PLAIN_STEPS, drive
from tests.run_twins import twin_federation, twin_parties

MODEL = "m"


def _parties(**values: tuple[float, int]) -> dict[str, PartyMetrics]:
    """``alpha=(0.9, 100)``: alpha measured 0.9 on 100 rows (of accuracy and loss both, for brevity)."""
    return {
        name: PartyMetrics(num_examples=rows, metrics={"accuracy": value, "loss": value}, validation_split=True)
        for name, (value, rows) in values.items()
    }


def test_the_fairness_gap_is_the_weighted_mean_less_the_worst_party_and_larger_is_worse_either_way():
    parties = _parties(alpha=(0.9, 100), beta=(0.6, 50))
    accuracy = fairness_gap(parties, "accuracy")  # mean (90 + 30) / 150 = 0.8; the worst is the lowest
    assert (accuracy.weighted_mean, accuracy.worst_party, accuracy.worst_value) == (pytest.approx(0.8), "beta", 0.6)
    assert accuracy.gap == pytest.approx(0.2)
    loss = fairness_gap(parties, "loss")  # the same mean, but lower is better: the worst is the highest (alpha)
    assert (loss.worst_party, loss.gap) == ("alpha", pytest.approx(0.1))
    even = fairness_gap(_parties(alpha=(0.7, 10), beta=(0.7, 30)), "accuracy")
    assert even.gap == 0.0
    evaluation = federated_evaluation(parties, {"accuracy": 0.85}, ("accuracy", "roc_auc", "loss"))
    assert set(evaluation.gaps) == {"accuracy", "loss"}  # nobody measured roc_auc: no gap for it
    assert evaluation.gap("accuracy") == pytest.approx(0.2) and evaluation.gap("roc_auc") is None


def test_a_validation_split_is_seeded_disjoint_and_never_takes_every_row():
    split = ValidationSplit(fraction=0.2, seed=3)
    training, validation = split.indices(11)
    assert len(validation) == 3 and len(training) == 8  # ceil(2.2)
    assert sorted(np.concatenate([training, validation]).tolist()) == list(range(11))
    again = split.indices(11)
    assert np.array_equal(again[1], validation)  # the same rows every time
    assert not np.array_equal(ValidationSplit(fraction=0.2, seed=4).indices(11)[1], validation)
    assert (split.held_out(1), split.held_out(2), ValidationSplit(fraction=0.99).held_out(5)) == (0, 1, 4)


def test_each_configured_gate_answers_with_its_reason_and_one_failure_blocks():
    policy = PromotionConfig(model_name=MODEL, threshold=0.8, min_improvement=0.01, max_fairness_gap=0.1)
    policy = policy.resolved("binary")
    evaluation = federated_evaluation(_parties(alpha=(0.9, 100), beta=(0.6, 50)), None, ("accuracy",))
    blocked = promotion_gates(policy, 0.85, 0.80, evaluation)
    assert [(g.name, g.passed) for g in blocked.gates] == [("threshold", True), ("champion", True), ("fairness", False)]
    assert not blocked.promote
    assert blocked.reason == "fairness gap of accuracy 0.2000 (worst party beta) exceeds max_fairness_gap 0.1000"
    fair = federated_evaluation(_parties(alpha=(0.86, 100), beta=(0.84, 50)), None, ("accuracy",))
    assert promotion_gates(policy, 0.85, 0.80, fair).promote
    low = promotion_gates(policy, 0.79, None, fair)
    assert not low.promote and low.reason == "candidate accuracy=0.7900 misses the threshold (at least 0.8000)"
    unmeasured = promotion_gates(policy, 0.85, 0.80, None)  # a gate that cannot be checked does not pass
    assert not unmeasured.promote and "no per-party accuracy" in unmeasured.reason
    rmse = PromotionConfig(model_name=MODEL, metric="rmse", threshold=2.0).resolved("regression")
    assert promotion_gates(rmse, 1.5, None, None).promote and not promotion_gates(rmse, 2.5, None, None).promote


def _promoter(tmp_path: Path, **policy: object) -> tuple[Promoter, MemoryRegistry, MemoryMetadata]:
    registry, metadata = MemoryRegistry(), MemoryMetadata(tmp_path)
    config = PromotionConfig(model_name=MODEL, **policy)  # type: ignore[arg-type]
    return Promoter(config, registry, "binary", metadata, tmp_path / "champions"), registry, metadata


def _candidate(run_id: str, accuracy: float, **parties: tuple[float, int]) -> Candidate:
    evaluation = federated_evaluation(_parties(**parties), None, ("accuracy",)) if parties else None
    return Candidate(
        run_id=run_id, model_uri=f"memory://{run_id}", metrics={"accuracy": accuracy}, evaluation=evaluation
    )


def _champion(registry: MemoryRegistry, alias: str = "champion") -> int | None:
    found = registry.version_by_alias(MODEL, alias)
    return found.version if found else None


def test_an_unfair_candidate_stays_challenger_and_the_champion_record_stays_where_it_was(tmp_path):
    promoter, registry, metadata = _promoter(tmp_path, max_fairness_gap=0.1)
    record = tmp_path / "champions" / f"{MODEL}.json"
    first = promoter.propose(_candidate("run-1", 0.80, alpha=(0.82, 100), beta=(0.76, 50)))
    assert (first.decision, first.version, first.champion_version) == ("promoted", 1, 1)
    assert first.fairness_gap == pytest.approx(0.04)
    assert json.loads(record.read_text())["version"] == 1 and metadata.tracked() == {
        "champions/m.json": metadata.files[record.resolve()]
    }
    recorded = record.read_bytes()

    better_but_unfair = promoter.propose(_candidate("run-2", 0.90, alpha=(1.0, 100), beta=(0.7, 50)))
    assert better_but_unfair.decision == "kept"  # mean (100 + 35) / 150 = 0.9, beta 0.7
    assert (
        better_but_unfair.reason == "fairness gap of accuracy 0.2000 (worst party beta) exceeds max_fairness_gap 0.1000"
    )
    assert (_champion(registry), _champion(registry, "challenger")) == (1, 2)
    tags = registry.versions(MODEL)[1].tags
    assert tags["promotion.decision"] == "kept" and tags["promotion.gate.fairness"].startswith("failed: fairness gap")
    assert tags["promotion.gate.champion"].startswith("passed: candidate accuracy=0.9000 beats champion 0.8000")
    assert tags["fairness_gap.accuracy"] == repr(better_but_unfair.fairness_gap)
    assert record.read_bytes() == recorded  # the champion record did not move either

    again = promoter.propose(_candidate("run-2", 0.90, alpha=(1.0, 100), beta=(0.7, 50)))  # a retried step
    assert again.version == 2 and len(registry.versions(MODEL)) == 2  # found its version, registered nothing


def test_a_held_promotion_moves_the_champion_only_when_approved(tmp_path, caplog):
    promoter, registry, _ = _promoter(tmp_path, approval="required")
    promoter.promote("memory://0", {"accuracy": 0.5}, "run-0", {}, approval=Approval(approve=True, reviewer="bo"))
    held = promoter.propose(_candidate("run-1", 0.8))
    assert held.awaiting_approval and held.reason.endswith("held for approval")
    assert (_champion(registry), _champion(registry, "challenger")) == (1, 2)  # nothing moved yet
    assert registry.versions(MODEL)[1].tags["promotion.decision"] == "awaiting approval"

    with caplog.at_level(logging.INFO, logger="components.run.promoter"):
        denied = promoter.conclude(held, Approval(approve=False, reviewer="ann", comment="not this quarter"))
    assert (denied.decision, denied.champion_version, _champion(registry)) == ("kept", 1, 1)
    assert denied.reason == "denied by ann: not this quarter"
    assert "m v2 kept: denied by ann: not this quarter" in caplog.text
    unanswered = promoter.conclude(held, None)
    assert unanswered.decision == "kept" and unanswered.reason == "approval required and none given within 3600 s"

    approved = promoter.conclude(held, Approval(approve=True, reviewer="ann", comment="ok"))
    assert (approved.decision, approved.champion_version, _champion(registry)) == ("promoted", 2, 2)
    assert [g.name for g in approved.gates] == ["champion", "approval"]
    assert registry.versions(MODEL)[1].tags["promotion.reviewer"] == "ann"
    assert json.loads((tmp_path / "champions" / f"{MODEL}.json").read_text())["approval"]["reviewer"] == "ann"


def test_a_champion_that_moved_while_a_promotion_waited_is_compared_again(tmp_path):
    promoter, registry, _ = _promoter(tmp_path, approval="required")
    held = promoter.propose(_candidate("run-1", 0.8))  # no champion yet: the champion gate passes
    promoter.conclude(promoter.propose(_candidate("run-2", 0.9)), Approval(approve=True))
    late = promoter.conclude(held, Approval(approve=True, reviewer="ann"))
    assert (late.decision, _champion(registry)) == ("kept", 2)
    assert late.reason.startswith("candidate accuracy=0.8000 does not beat champion 0.9000")


@pytest.mark.parametrize("failing", ["set_alias", "set_version_tags", "push"])
def test_a_promotion_that_fails_halfway_undoes_every_move_it_made(tmp_path, failing):
    promoter, registry, metadata = _promoter(tmp_path, approval="required")  # the moves come in conclude
    record = tmp_path / "champions" / f"{MODEL}.json"
    promoter.conclude(promoter.propose(_candidate("run-1", 0.8)), Approval(approve=True))
    held = promoter.propose(_candidate("run-2", 0.9))  # v2: registered, challenger, awaiting approval
    before = (record.read_bytes(), dict(metadata.files), dict(registry.versions(MODEL)[1].tags))
    twin = metadata if failing == "push" else registry
    twin.fail_next(failing, EdgeUnavailable("edge", "connection reset"))
    with pytest.raises(EdgeUnavailable, match="connection reset"):
        promoter.conclude(held, Approval(approve=True, reviewer="ann"))
    assert (_champion(registry), _champion(registry, "challenger")) == (1, 2)
    assert registry.versions(MODEL)[1].tags == before[2]  # no approval tags, still "awaiting approval"
    assert record.read_bytes() == before[0] and json.loads(record.read_text())["version"] == 1
    assert metadata.files == before[1]  # DVC records v1's record again
    retried = promoter.conclude(held, Approval(approve=True, reviewer="ann"))  # the task's retry
    assert (retried.decision, _champion(registry), json.loads(record.read_text())["version"]) == ("promoted", 2, 2)


def test_the_first_promotion_failing_leaves_no_champion_no_record_and_no_tags(tmp_path):
    promoter, registry, metadata = _promoter(tmp_path)
    registry.fail_next("set_version_tags", EdgeUnavailable("registry", "connection reset"))
    with pytest.raises(EdgeUnavailable):
        promoter.propose(_candidate("run-1", 0.8))
    record = tmp_path / "champions" / f"{MODEL}.json"
    assert _champion(registry) is None and not record.exists() and metadata.tracked() == {}
    assert _champion(registry, "challenger") == 1  # registered: a retry finds it and promotes it
    retried = promoter.propose(_candidate("run-1", 0.8))
    assert (retried.decision, retried.version, _champion(registry)) == ("promoted", 1, 1)


def test_a_run_whose_final_model_fails_one_party_is_not_promoted_and_says_so(tmp_path, caplog):
    federation = twin_federation(
        tmp_path / "ws",
        parties=3,
        rounds=2,
        partition_kind="dirichlet",
        alpha=0.3,
        evaluation={"validation": {"fraction": 0.25, "seed": 1}},
        round_timeout_s=60,  # a loaded machine is slow, not a failure
    )
    config = load_federation_config(federation.config_path)
    config.promotion.max_fairness_gap = 0.05
    model = config.promotion.model_name
    with twin_parties(federation), caplog.at_level(logging.INFO, logger="components.run"):
        run = FederationRun(config, federation.workspace, "unfair", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    evaluation = summary.evaluation
    assert summary.status == "completed" and evaluation is not None
    rows = {party: s["row_count"] for party, s in summary.validation.items()}
    for party, measured in evaluation.parties.items():  # each evaluated its own held-out quarter
        assert measured.validation_split and measured.num_examples == -(-rows[party] // 4)
    accuracy = {party: p.metrics["accuracy"] for party, p in evaluation.parties.items()}
    weights = {party: p.num_examples for party, p in evaluation.parties.items()}
    mean = sum(accuracy[p] * weights[p] for p in accuracy) / sum(weights.values())
    gap = evaluation.gaps["accuracy"]
    assert gap.gap == pytest.approx(mean - min(accuracy.values())) and gap.gap > 0.05
    print(f"per-party accuracy {accuracy}, weighted mean {mean:.4f}, fairness gap {gap.gap:.4f}")
    decision = summary.promotion
    assert decision is not None and decision.decision == "kept"
    assert decision.reason == (
        f"fairness gap of accuracy {gap.gap:.4f} (worst party {gap.worst_party}) exceeds max_fairness_gap 0.0500"
    )
    registry = federation.edges.registry
    assert registry.version_by_alias(model, "champion") is None
    assert registry.version_by_alias(model, "challenger").version == 1
    tracked = federation.tracker.runs[summary.mlflow_run_id]
    assert tracked.tags["promotion.decision"] == "kept"
    assert tracked.tags["promotion.gate.fairness"] == f"failed: {decision.reason}"
    final = tracked.metrics[summary.rounds[-1].round]
    assert final["fairness_gap.accuracy"] == gap.gap
    assert {f"party.{p}.accuracy" for p in accuracy} <= set(final)
    assert f"promotion gate fairness: {decision.reason}" in caplog.text
    # a party trains on the rows its split leaves: its update says so, and the coordinator checks it against that
    for update in RunCheckpoints(federation.workspace.checkpoints, "unfair").load_updates(1):
        assert update.num_examples == rows[update.party] - evaluation.parties[update.party].num_examples

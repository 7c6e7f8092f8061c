"""The data owner's policy: every rule rejects a plan that breaks it, by name; a manual policy holds plans."""

from __future__ import annotations

from datetime import time

import pytest

from components.core.model_spec import ModelSpec, PluginRef
from components.core.policy import PartyPolicy, decide, within_hours
from components.core.protocol.bodies import PrivacyBudget
from components.core.protocol.plan import PlannedPrivacy, RunPlan

KEY = "k" * 40
NOON = time(12, 0)


def plan(**changes) -> RunPlan:
    base = RunPlan(
        run_id="run-1",
        federation="clinics",
        model=ModelSpec(n_features=4, n_classes=2, task="binary"),
        strategies=["fedavg"],
        rounds=10,
        local_epochs=1,
        sent_back=["each round: the model update"],
    )
    return base.model_copy(update=changes)


PLUGIN = ModelSpec(
    kind="plugin", n_features=4, n_classes=2, task="binary", plugin=PluginRef(name="tiny-cnn", version="1.0.0")
)
DP = PlannedPrivacy(mode="central", noise_multiplier=0.5, clip_norm=1.0)

# rule -> (policy that has it, a plan that breaks it, a plan that keeps it)
RULES = {
    "coordinators": ({"coordinators": ["x" * 40]}, {}, None),
    "federations": ({"federations": ["banks"]}, {}, {"federation": "banks"}),
    "model_kinds": ({"model_kinds": ["layers"]}, {}, {"model": PLUGIN.model_copy(update={"kind": "layers"})}),
    "plugins": ({"plugins": ["tiny-cnn==2.0.0"]}, {"model": PLUGIN}, {}),
    "strategies": (
        {"strategies": ["dp", "fedavg"]},
        {"strategies": ["clipping", "fedavg"]},
        {"strategies": ["dp", "fedavg"]},
    ),
    "tasks": ({"tasks": ["regression"]}, {}, None),
    "max_rounds": ({"max_rounds": 5}, {}, {"rounds": 5}),
    "max_local_epochs": ({"max_local_epochs": 2}, {"local_epochs": 3}, {"local_epochs": 2}),
    "require_secure_aggregation": ({"require_secure_aggregation": True}, {}, {"secure_aggregation": True}),
    "require_dp": ({"require_dp": True}, {}, {"privacy": DP}),
    "min_noise_multiplier": (
        {"min_noise_multiplier": 1.0},
        {"privacy": DP},
        {"privacy": DP.model_copy(update={"noise_multiplier": 1.0})},
    ),
    "privacy_budget": ({"privacy_budget": PrivacyBudget(epsilon=3, delta=1e-5)}, {}, {"privacy": DP}),
    "training_hours": ({"training_hours": ["20:00-06:00"]}, {}, None),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_plan_that_breaks_a_rule_is_rejected_naming_it(rule):
    policy_fields, breaking, keeping = RULES[rule]
    policy = PartyPolicy(**policy_fields)
    decision = decide(policy, plan(**breaking), KEY, NOON)
    assert decision.verdict == "reject"
    assert decision.rule == rule
    assert decision.reason
    if keeping is not None:
        assert decide(policy, plan(**keeping), KEY, NOON).verdict == "accept"


def test_the_model_plugin_rule_takes_a_name_or_a_name_and_version():
    assert decide(PartyPolicy(plugins=["tiny-cnn"]), plan(model=PLUGIN), KEY, NOON).verdict == "accept"
    assert decide(PartyPolicy(plugins=["tiny-cnn==1.0.0"]), plan(model=PLUGIN), KEY, NOON).verdict == "accept"


def test_a_manual_policy_holds_a_plan_that_keeps_every_rule_and_still_rejects_one_that_breaks_a_rule():
    policy = PartyPolicy(approval="manual", max_rounds=10)
    assert decide(policy, plan(), KEY, NOON).verdict == "hold"
    assert decide(policy, plan(rounds=11), KEY, NOON).rule == "max_rounds"


def test_no_rules_accept_any_plan_and_a_coordinator_listed_by_key_is_served():
    assert decide(PartyPolicy(), plan(), KEY, NOON).verdict == "accept"
    assert decide(PartyPolicy(coordinators=[KEY]), plan(), KEY, NOON).verdict == "accept"


def test_training_windows_wrap_past_midnight_and_exclude_their_end():
    assert within_hours(["20:00-06:00"], time(23, 0)) and within_hours(["20:00-06:00"], time(5, 59))
    assert not within_hours(["20:00-06:00"], time(6, 0)) and not within_hours(["20:00-06:00"], time(12, 0))
    assert within_hours(["09:00-17:00"], time(9, 0)) and not within_hours(["09:00-17:00"], time(17, 0))
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        PartyPolicy(training_hours=["9-17"])


def test_a_restarted_agent_keeps_serving_a_run_it_accepted_and_still_refuses_one_it_rejected(tmp_path):
    from party_agent.plans import PlanDesk

    before = PlanDesk(PartyPolicy(federations=["clinics"]), tmp_path)
    assert before.receive(plan(), KEY).verdict == "accept"
    assert before.receive(plan(run_id="run-2", federation="banks"), KEY).verdict == "reject"

    after = PlanDesk(PartyPolicy(federations=["clinics"]), tmp_path)  # the agent restarted mid-run: memory is empty

    assert after.outside_plan("run-1", 11, plan().model, 1) == "round 11 is past the plan's 10 rounds"
    assert after.refusal("run-1") is None
    assert after.refusal("run-2").startswith("run run-2's plan is rejected here (federations")
    assert after.refusal("run-3") == "no accepted plan for run 'run-3'"

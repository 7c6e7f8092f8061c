"""Reward shares, reward-model tiers and the reputation formula, on numbers a person can check by hand."""

import pytest

from components.core.reputation import ReputationInputs, run_score, update_reputation
from components.core.rewards import allocate_rewards, model_reward_tiers, paid_contributions

# ---- pool shares ----


def test_shares_follow_contribution_above_the_floor():
    # floor: 20% of 100 split over 4 non-rejected parties = 5 each; the other 80 by positive contribution
    # (a: 3, b: 1, c: -2 -> 0, d: 0 out of 4)
    rewards = allocate_rewards(100.0, {"a": 3.0, "b": 1.0, "c": -2.0, "d": 0.0, "e": 5.0}, {"e"}, 0.2)
    assert rewards == pytest.approx({"a": 65.0, "b": 25.0, "c": 5.0, "d": 5.0, "e": 0.0})
    assert sum(rewards.values()) == pytest.approx(100.0)


def test_rejected_party_without_contribution_entry_still_listed_with_zero():
    rewards = allocate_rewards(10.0, {"a": 1.0}, {"x"}, 0.0)
    assert rewards == {"a": 10.0, "x": 0.0}


def test_nobody_positive_splits_equally():
    assert allocate_rewards(9.0, {"a": -1.0, "b": 0.0, "c": -0.5}, set(), 0.1) == pytest.approx(
        dict.fromkeys("abc", 3.0)
    )


def test_everyone_rejected_pays_nothing():
    assert allocate_rewards(50.0, {"a": 2.0, "b": 1.0}, {"a", "b"}, 0.5) == {"a": 0.0, "b": 0.0}


def test_full_floor_is_an_equal_split():
    assert allocate_rewards(6.0, {"a": 10.0, "b": 0.0, "c": 2.0}, set(), 1.0) == pytest.approx(
        dict.fromkeys("abc", 2.0)
    )


@pytest.mark.parametrize(("pool", "floor"), [(-1.0, 0.1), (1.0, 1.5), (1.0, -0.1)])
def test_invalid_pool_or_floor_rejected(pool, floor):
    with pytest.raises(ValueError):
        allocate_rewards(pool, {"a": 1.0}, set(), floor)


# ---- reward models ----


def test_model_tiers_follow_contribution():
    # 4 eligible: a 4.0, b 2.0, c 1.0, d -1.0 (ranked a, b, c, d); x rejected
    # a: ceil(4 * 4/4) = 4 -> everyone; b: ceil(4 * 2/4) = 2 -> a, b; c: ceil(4 * 1/4) = 1 -> a, plus itself
    # d: nothing positive -> ceil(0) = 0 -> itself only; x: no model
    tiers = model_reward_tiers({"a": 4.0, "b": 2.0, "c": 1.0, "d": -1.0, "x": 9.0}, excluded={"x"})
    assert tiers == {"a": ["a", "b", "c", "d"], "b": ["a", "b"], "c": ["a", "c"], "d": ["d"], "x": []}


def test_model_tiers_without_any_positive_contribution_share_the_full_model():
    assert model_reward_tiers({"a": 0.0, "b": -1.0}) == {"a": ["a", "b"], "b": ["a", "b"]}


# ---- reputation ----


def test_run_score_by_hand():
    # liveness (8+1)/(8+2+2) = 0.75; cleanliness 1/(1+1) = 0.5; value min(1, 0.1*5) = 0.5 -> (1+0.5)/2 = 0.75
    inputs = ReputationInputs(
        rounds_answered=8, rounds_missed=2, rejected_messages=1, contribution_share=0.1, parties=5
    )
    assert run_score(inputs) == pytest.approx(0.75 * 0.5 * 0.75)


def test_reputation_decays_toward_the_run_score():
    perfect = ReputationInputs(
        rounds_answered=10, rounds_missed=0, rejected_messages=0, contribution_share=0.5, parties=2
    )
    assert run_score(perfect) == pytest.approx(11 / 12)
    assert update_reputation(0.5, perfect) == pytest.approx(0.8 * 0.5 + 0.2 * 11 / 12)
    assert update_reputation(0.5, perfect, decay=0.0) == pytest.approx(11 / 12)


def test_absent_and_rejected_party_falls():
    absent = ReputationInputs(rounds_answered=0, rounds_missed=10, rejected_messages=3, contribution_share=0, parties=4)
    reputation = 1.0
    for _ in range(10):
        reputation = update_reputation(reputation, absent)
    assert 0 <= reputation < 0.2
    with pytest.raises(ValueError):
        update_reputation(1.5, absent)


# ---- the settlement's eligibility ----


def test_a_party_in_no_round_gets_no_share_and_no_tier_place():
    from types import SimpleNamespace

    from components.core.config import RewardConfig
    from components.run.records import Contributions
    from components.run.settlement import Settlement
    from components.run.summary import RoundMetrics, RoundRow

    config = SimpleNamespace(rewards=RewardConfig(pool=90.0, participation_floor=0.1))
    settlement = Settlement(config, None, lambda params: {}, "withheld for this test", lambda party: 0.5)
    rows = [
        RoundRow(round=r, participants=["a", "b"], metrics=RoundMetrics(loss=1.0), bytes_up=0, bytes_down=0, seconds=0)
        for r in (1, 2)
    ]
    contributions = Contributions(method="exact", totals={"a": 2.0, "b": 1.0, "idle": 0.0})
    rewards = settlement.reward(contributions, rows, ["a", "b", "idle"], lambda party, params: None)
    # floor 9 split over a and b only (4.5 each); the other 81 by contribution 2:1
    assert rewards.shares == pytest.approx({"a": 4.5 + 54.0, "b": 4.5 + 27.0, "idle": 0.0})
    assert rewards.models["idle"].sources == []
    assert rewards.models["a"].sources == ["a", "b"] and rewards.models["b"].sources == ["a", "b"]


def test_parties_equal_within_error_are_paid_on_their_groups_mean():
    # a and b overlap (|0.30 - 0.26| <= 2 * (0.02 + 0.02)); c is far below: rank 1, 1, 3
    paid = paid_contributions({"a": 0.30, "b": 0.26, "c": 0.05}, {"a": 0.02, "b": 0.02, "c": 0.01})
    assert paid == pytest.approx({"a": 0.28, "b": 0.28, "c": 0.05})
    assert allocate_rewards(100.0, paid, (), 0.0) == pytest.approx({"a": 28 / 0.61, "b": 28 / 0.61, "c": 5 / 0.61})

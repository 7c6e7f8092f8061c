"""Client-level differential privacy: clipping, noise, the RDP accountant and the privacy budget."""

import numpy as np
import pytest

from components.core.errors import BudgetExceeded
from components.core.strategies import ClientUpdate, build_strategy
from components.core.strategies.dp import RdpAccountant, privatize_update


def update(party: str, **tensors: list[float]) -> ClientUpdate:
    return ClientUpdate(party, {n: np.array(v, dtype=np.float32) for n, v in tensors.items()}, num_examples=10)


def test_accountant_reproduces_opacus_documented_example():
    # opacus.accountants.analysis.rdp module docstring: parameters [(q=1e-5, sigma=1.0, 10 steps),
    # (q=1e-4, sigma=3.0, 4 steps)], orders 2..32, delta=1e-5 -> epsilon 0.336 (at order 23).
    accountant = RdpAccountant(orders=range(2, 33))
    accountant.record(noise_multiplier=1.0, sample_rate=1e-5, steps=10)
    accountant.record(noise_multiplier=3.0, sample_rate=1e-4, steps=4)
    assert accountant.epsilon(1e-5) == pytest.approx(0.336, abs=5e-4)
    assert accountant.steps == 14


def test_epsilon_is_zero_before_any_round_and_grows_each_round():
    strategy = build_strategy("dp", clip_norm=1.0, noise_multiplier=1.0, seed=0)
    current = {"w": np.zeros(2, dtype=np.float32)}
    assert strategy.epsilon(1e-5) == 0.0
    spent = []
    for round_number in (1, 2, 3):
        strategy.aggregate(round_number, current, [update("a", w=[0.1, 0.0]), update("b", w=[0.0, 0.1])])
        spent.append(strategy.epsilon(1e-5))
    assert 0 < spent[0] < spent[1] < spent[2]


def test_run_stops_before_the_round_that_would_exceed_the_budget():
    accountant = RdpAccountant()
    accountant.record(noise_multiplier=2.0, sample_rate=1.0, steps=1)
    after_one = accountant.epsilon(1e-5)
    accountant.record(noise_multiplier=2.0, sample_rate=1.0, steps=1)
    budget = (after_one + accountant.epsilon(1e-5)) / 2  # enough for one round, not for two
    strategy = build_strategy("dp", clip_norm=1.0, noise_multiplier=2.0, seed=0)
    current = {"w": np.zeros(1, dtype=np.float32)}
    strategy.check_budget(budget, delta=1e-5)
    strategy.aggregate(1, current, [update("a", w=[0.5])])
    with pytest.raises(BudgetExceeded, match="round 2 would bring epsilon to .* over the budget"):
        strategy.check_budget(budget, delta=1e-5)


def test_central_mode_clips_then_averages_with_equal_weight():
    strategy = build_strategy("dp", clip_norm=1.0, noise_multiplier=1e-9, seed=0)
    current = {"w": np.zeros(2, dtype=np.float32)}
    out = strategy.aggregate(1, current, [update("a", w=[3.0, 4.0]), update("b", w=[0.0, 0.5])])
    np.testing.assert_allclose(out["w"], [(0.6 + 0.0) / 2, (0.8 + 0.5) / 2], atol=1e-6)


def test_central_noise_has_the_documented_scale_and_spares_frozen_tensors():
    strategy = build_strategy("dp", clip_norm=0.5, noise_multiplier=2.0, seed=3, frozen=["scale"])
    current = {"w": np.zeros(20_000, dtype=np.float32), "scale": np.array([2.0], dtype=np.float32)}
    updates = [ClientUpdate(p, {**current, "scale": np.array([9.0], dtype=np.float32)}, 1) for p in "abcd"]
    out = strategy.aggregate(1, current, updates)
    assert np.std(out["w"]) == pytest.approx(2.0 * 0.5 / 4, rel=0.03)  # noise_multiplier * clip_norm / n
    np.testing.assert_array_equal(out["scale"], [2.0])


def test_seeded_noise_is_reproducible_per_round():
    current = {"w": np.zeros(3, dtype=np.float32)}
    updates = [update("a", w=[0.1, 0.2, 0.3])]
    first = build_strategy("dp", clip_norm=1.0, noise_multiplier=1.0, seed=5).aggregate(4, current, updates)
    again = build_strategy("dp", clip_norm=1.0, noise_multiplier=1.0, seed=5).aggregate(4, current, updates)
    other_round = build_strategy("dp", clip_norm=1.0, noise_multiplier=1.0, seed=5).aggregate(5, current, updates)
    np.testing.assert_array_equal(first["w"], again["w"])
    assert not np.array_equal(first["w"], other_round["w"])


def test_dp_around_a_server_optimiser_keeps_both_states_through_a_checkpoint():
    options = {"inner": "fedadam", "clip_norm": 1.0, "noise_multiplier": 1.0, "seed": 1}
    strategy = build_strategy("dp", **options)
    current = {"w": np.zeros(2, dtype=np.float32)}
    strategy.aggregate(1, current, [update("a", w=[0.5, 0.5]), update("b", w=[0.1, 0.0])])
    state = strategy.state()
    assert set(state) == {"dp.history", "inner.m.w", "inner.v.w"}
    resumed = build_strategy("dp", **options)
    resumed.load_state(state)
    assert resumed.epsilon(1e-5) == strategy.epsilon(1e-5) > 0
    np.testing.assert_array_equal(
        resumed.aggregate(2, current, [update("a", w=[0.2, 0.2])])["w"],
        strategy.aggregate(2, current, [update("a", w=[0.2, 0.2])])["w"],
    )


def test_privatize_update_clips_then_adds_noise_for_local_dp():
    reference = {"w": np.zeros(10_000, dtype=np.float32), "scale": np.array([2.0], dtype=np.float32)}
    params = {"w": np.full(10_000, 1.0, dtype=np.float32), "scale": np.array([7.0], dtype=np.float32)}
    private = privatize_update(params, reference, 1.0, 0.1, np.random.default_rng(0), frozen=["scale"])
    clipped_value = 1.0 / np.sqrt(10_000)  # the all-ones delta scaled to norm 1
    assert np.mean(private["w"]) == pytest.approx(clipped_value, abs=0.003)
    assert np.std(private["w"]) == pytest.approx(0.1 * 1.0, rel=0.03)
    np.testing.assert_array_equal(private["scale"], [2.0])
    assert private["w"].dtype == np.float32


def test_local_mode_only_averages_and_accounts_with_halved_multiplier():
    strategy = build_strategy("dp", clip_norm=1.0, noise_multiplier=2.0, mode="local")
    current = {"w": np.zeros(2, dtype=np.float32)}
    out = strategy.aggregate(1, current, [update("a", w=[3.0, 4.0]), update("b", w=[1.0, 0.0])])
    np.testing.assert_allclose(out["w"], [2.0, 2.0])  # already private: no clipping, no server noise
    reference = RdpAccountant()
    reference.record(noise_multiplier=1.0, sample_rate=1.0)
    assert strategy.epsilon(1e-5) == pytest.approx(reference.epsilon(1e-5))

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


# ---- privacy() through the strategy chain ----
# z=1, q=1, delta=1e-5: a Gaussian mechanism's RDP at order a is a / (2 z^2) per round, and opacus turns
# T rounds into epsilon = min_a T a / 2 - (log delta + log a) / (a - 1) + log((a - 1) / a): 4.7285, 7.0774, 9.0100.
EPSILONS = [4.7285, 7.0774, 9.0100]
DP_OPTIONS = {"inner": "fedavg", "clip_norm": 1.0, "noise_multiplier": 1.0, "seed": 0}
CHAINS = {
    "dp": lambda: build_strategy("dp", **DP_OPTIONS),
    "clipping(dp)": lambda: build_strategy("clipping", inner="dp", inner_options=DP_OPTIONS, max_norm=5.0),
    "bucketing(dp)": lambda: build_strategy("bucketing", inner="dp", inner_options=DP_OPTIONS, bucket_size=1, seed=0),
    "clipping(bucketing(dp))": lambda: build_strategy(
        "clipping",
        inner="bucketing",
        inner_options={"inner": "dp", "inner_options": DP_OPTIONS, "seed": 0},
        max_norm=5.0,
    ),
}
ROUND = [update("a", w=[0.1, 0.0]), update("b", w=[0.0, 0.1])]


def by_hand_epsilon(rounds: int, z: float = 1.0, delta: float = 1e-5) -> float:
    orders = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)), dtype=np.float64)
    return float(
        np.min(
            rounds * orders / (2 * z**2)
            - (np.log(delta) + np.log(orders)) / (orders - 1)
            + np.log((orders - 1) / orders)
        )
    )


def test_hand_formula_gives_the_numbers_the_tests_use():
    assert [by_hand_epsilon(t) for t in (1, 2, 3)] == pytest.approx(EPSILONS, abs=1e-4)


@pytest.mark.parametrize("chain", list(CHAINS))
def test_epsilon_is_reported_wherever_dp_sits_in_the_chain(chain):
    strategy = CHAINS[chain]()
    account = strategy.privacy()
    assert account is not None
    assert (account.mode, account.party_updates_private, account.rounds) == ("central", False, 0)
    assert account.epsilon(1e-5) == 0.0
    assert account.epsilon_after_next_round(1e-5) == pytest.approx(EPSILONS[0], abs=1e-4)
    spent = []
    for round_number in (1, 2, 3):
        strategy.aggregate(round_number, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
        spent.append(strategy.privacy().epsilon(1e-5))
    assert spent == pytest.approx(EPSILONS, abs=1e-4)
    assert account.rounds == 3  # the account handed out before the rounds is live
    assert account.epsilon_after_next_round(1e-5) == pytest.approx(by_hand_epsilon(4))
    assert account.rounds == 3  # looking ahead records nothing


def test_every_position_spends_the_same_epsilon_for_the_same_noise():
    spent = {}
    for chain, make in CHAINS.items():
        strategy = make()
        for round_number in (1, 2):
            strategy.aggregate(round_number, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
        spent[chain] = strategy.privacy().epsilon(1e-5)
    assert len(set(spent.values())) == 1, spent


@pytest.mark.parametrize("chain", list(CHAINS))
def test_budget_stops_the_run_before_the_overspending_round_wherever_dp_sits(chain):
    strategy = CHAINS[chain]()
    completed = 0
    with pytest.raises(
        BudgetExceeded, match=r"round 3 would bring epsilon to 9\.010 at delta=1e-05, over the budget of 8"
    ):
        for round_number in range(1, 6):
            strategy.privacy().check_budget(8.0, delta=1e-5)  # 7.08 after two rounds, 9.01 after three
            strategy.aggregate(round_number, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
            completed = round_number
    assert completed == 2
    assert strategy.privacy().epsilon(1e-5) == pytest.approx(EPSILONS[1], abs=1e-4)


def test_dp_layer_inside_a_wrapper_is_the_one_aggregating():
    # clipping at 5 leaves these deltas alone; dp clips to 1, adds (almost) no noise: mean of (0.6, 0.8), (0, 0.5)
    options = {**DP_OPTIONS, "noise_multiplier": 1e-9}
    strategy = build_strategy("clipping", inner="dp", inner_options=options, max_norm=5.0)
    out = strategy.aggregate(
        1, {"w": np.zeros(2, dtype=np.float32)}, [update("a", w=[3.0, 4.0]), update("b", w=[0.0, 0.5])]
    )
    np.testing.assert_allclose(out["w"], [0.3, 0.65], atol=1e-6)
    assert strategy.privacy() is strategy.inner.privacy() is strategy.inner.privacy()


def test_wrapped_dp_keeps_its_checkpoint_format_and_resumes_its_account():
    make = CHAINS["clipping(dp)"]
    strategy = make()
    strategy.aggregate(1, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
    state = strategy.state()
    assert set(state) == {"dp.history"}  # clipping adds nothing; dp's own keys as before
    np.testing.assert_array_equal(state["dp.history"], [[1.0, 1.0, 1.0]])  # (noise multiplier, sample rate, steps)
    resumed = make()
    account = resumed.privacy()
    resumed.load_state(state)
    assert account.rounds == 1
    assert account.epsilon(1e-5) == strategy.privacy().epsilon(1e-5) == pytest.approx(EPSILONS[0], abs=1e-4)


def test_the_old_dp_methods_agree_with_the_account():
    strategy = build_strategy("dp", **DP_OPTIONS)
    strategy.aggregate(1, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
    assert strategy.epsilon(1e-5) == strategy.privacy().epsilon(1e-5)
    with pytest.raises(BudgetExceeded, match="round 2 would bring epsilon to 7.077"):
        strategy.check_budget(7.0, delta=1e-5)


def test_local_mode_account_says_party_updates_are_private():
    account = build_strategy("dp", clip_norm=1.0, noise_multiplier=2.0, mode="local").privacy()
    assert (account.mode, account.party_updates_private) == ("local", True)
    # a local release changes by at most 2 * clip_norm, so z=2 is accounted as z=1 (see the module docstring)
    assert account.epsilon_after_next_round(1e-5) == pytest.approx(EPSILONS[0], abs=1e-4)


def test_mixing_may_wrap_local_dp_but_not_central_dp():
    local = {**DP_OPTIONS, "mode": "local"}
    strategy = build_strategy("mixing", inner="dp", inner_options=local, f=0)
    strategy.aggregate(1, {"w": np.zeros(2, dtype=np.float32)}, ROUND)
    assert strategy.privacy().party_updates_private
    assert strategy.privacy().rounds == 1
    with pytest.raises(ValueError, match="mixing cannot wrap central-mode dp"):
        build_strategy("mixing", inner="dp", inner_options=DP_OPTIONS, f=0)
    with pytest.raises(ValueError, match="mixing cannot wrap central-mode dp"):  # found below another wrapper too
        build_strategy(
            "mixing", inner="clipping", inner_options={"inner": "dp", "inner_options": DP_OPTIONS, "max_norm": 5.0}
        )


@pytest.mark.parametrize(
    ("inner", "inner_options"),
    [
        ("dp", DP_OPTIONS),
        ("clipping", {"inner": "dp", "inner_options": DP_OPTIONS, "max_norm": 5.0}),
    ],
    ids=["dp(dp)", "dp(clipping(dp))"],
)
def test_dp_inside_dp_is_refused(inner, inner_options):
    with pytest.raises(ValueError, match="at most one DP layer"):
        build_strategy("dp", inner=inner, inner_options=inner_options, clip_norm=1.0, noise_multiplier=1.0)

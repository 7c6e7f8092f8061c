"""Strategies chosen by name, on updates a person can check by hand."""

from collections.abc import Sequence

import numpy as np
import pytest

from components.core.params import Params
from components.core.strategies import ClientUpdate, build_strategy, strategy_names
from components.core.strategies.bucketing import Bucketing
from components.core.strategies.median import CoordinateMedian
from components.core.strategies.mixing import NearestNeighbourMixing


def update(party: str, *values: float, examples: int = 1) -> ClientUpdate:
    return ClientUpdate(party, {"w": np.array(values, dtype=np.float32)}, num_examples=examples)


def zeros(size: int) -> dict[str, np.ndarray]:
    return {"w": np.zeros(size, dtype=np.float32)}


def test_every_strategy_of_the_issue_is_registered():
    expected = {"fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "median", "trimmed_mean", "multikrum"}
    assert expected | {"clipping", "dp", "bucketing", "mixing"} == set(strategy_names())


def test_options_are_given_by_name():
    assert build_strategy("trimmed_mean", beta=0.1).beta == 0.1
    with pytest.raises(TypeError):
        build_strategy("median", beta=0.1)


def test_fedprox_averages_like_fedavg_and_asks_for_the_proximal_term():
    strategy = build_strategy("fedprox", mu=0.1)
    out = strategy.aggregate(1, zeros(1), [update("a", 1.0, examples=1), update("b", 5.0, examples=3)])
    np.testing.assert_allclose(out["w"], [4.0])
    assert strategy.training_overrides() == {"proximal_mu": 0.1}
    assert build_strategy("fedavg").training_overrides() == {}


# Reddi et al. 2021 by hand: x=0, one update with delta (1, -2), beta1=beta2=0.5, tau=0.5, eta=1,
# so m = 0.5 * delta = (0.5, -1) and v starts at tau^2 = 0.25.
@pytest.mark.parametrize(
    ("name", "v"),
    [
        ("fedadagrad", [0.25 + 1, 0.25 + 4]),  # v + delta^2
        ("fedadam", [0.5 * 0.25 + 0.5 * 1, 0.5 * 0.25 + 0.5 * 4]),  # b2 v + (1 - b2) delta^2
        ("fedyogi", [0.25 + 0.5 * 1, 0.25 + 0.5 * 4]),  # v - (1 - b2) delta^2 sign(v - delta^2), sign = -1
    ],
)
def test_server_optimisers_first_step_by_hand(name, v):
    strategy = build_strategy(name, server_learning_rate=1.0, beta1=0.5, beta2=0.5, tau=0.5)
    out = strategy.aggregate(1, zeros(2), [update("a", 1.0, -2.0)])
    expected = np.array([0.5, -1.0]) / (np.sqrt(v) + 0.5)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-6)
    assert out["w"].dtype == np.float32


def test_yogi_second_moment_shrinks_slowly_when_deltas_get_small():
    strategy = build_strategy("fedyogi", server_learning_rate=1.0, beta1=0.0, beta2=0.5, tau=0.5)
    strategy.aggregate(1, zeros(1), [update("a", 2.0)])  # v = 0.25 + 0.5 * 4 = 2.25
    strategy.aggregate(2, zeros(1), [update("a", 1.0)])  # v - 0.5 * 1 * sign(2.25 - 1) = 1.75
    np.testing.assert_allclose(strategy.state()["v.w"], [1.75])


def test_server_optimiser_state_survives_a_checkpoint():
    first = build_strategy("fedadam", server_learning_rate=0.1)
    first.aggregate(1, zeros(2), [update("a", 1.0, -2.0)])
    resumed = build_strategy("fedadam", server_learning_rate=0.1)
    resumed.load_state(first.state())
    after_first = first.aggregate(2, zeros(2), [update("a", 0.5, 0.5)])
    after_resumed = resumed.aggregate(2, zeros(2), [update("a", 0.5, 0.5)])
    np.testing.assert_array_equal(after_first["w"], after_resumed["w"])
    assert set(first.state()) == {"m.w", "v.w"}


def test_median_strategy_ignores_one_wild_party():
    updates = [update("a", 1.0), update("b", 2.0), update("evil", -1e6)]
    np.testing.assert_array_equal(build_strategy("median").aggregate(1, zeros(1), updates)["w"], [1.0])


def test_trimmed_mean_strategy():
    updates = [update(p, v) for p, v in zip("abcde", [1.0, 2.0, 3.0, 4.0, 1e6], strict=True)]
    out = build_strategy("trimmed_mean", beta=0.2).aggregate(1, zeros(1), updates)
    np.testing.assert_allclose(out["w"], [3.0])  # mean of 2, 3, 4


def test_multikrum_strategy_keeps_n_minus_f_by_default():
    updates = [update(p, v, examples=1) for p, v in zip("abcdef", [0.0, 1.0, 2.0, 3.0, -50.0, 80.0], strict=True)]
    out = build_strategy("multikrum", f=2).aggregate(1, zeros(1), updates[:4] + [update("g", 1.5)] + updates[4:])
    np.testing.assert_allclose(out["w"], [(0 + 1 + 2 + 3 + 1.5) / 5])


def test_clipping_wraps_any_strategy():
    strategy = build_strategy("clipping", max_norm=1.0)  # inner defaults to fedavg
    out = strategy.aggregate(1, zeros(2), [update("a", 3.0, 4.0), update("b", 0.0, 0.5)])
    np.testing.assert_allclose(out["w"], [(0.6 + 0.0) / 2, (0.8 + 0.5) / 2])


@pytest.mark.parametrize(
    ("wrapper", "options"),
    [
        ("clipping", {"max_norm": 10.0}),
        ("bucketing", {"seed": 0}),
        ("mixing", {"f": 0}),
        ("dp", {"clip_norm": 10.0, "noise_multiplier": 1.0}),
    ],
)
def test_wrappers_pass_local_training_settings_and_state_through(wrapper: str, options: dict) -> None:
    prox = build_strategy(wrapper, inner="fedprox", inner_options={"mu": 0.5}, **options)
    assert prox.training_overrides() == {"proximal_mu": 0.5}
    adam = build_strategy(wrapper, inner="fedadam", **options)
    adam.aggregate(1, zeros(1), [update("a", 1.0), update("b", 3.0)])
    assert {"m.w", "v.w"} <= {name.removeprefix("inner.") for name in adam.state()}


class Recorder(CoordinateMedian):
    """A median that keeps the updates it was given."""

    def __init__(self) -> None:
        self.seen: list[ClientUpdate] = []

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        self.seen = list(updates)
        return super().aggregate(round_number, current, updates)


def test_bucketing_with_one_bucket_is_the_example_weighted_mean():
    strategy = build_strategy("bucketing", inner="median", bucket_size=2, seed=0)
    out = strategy.aggregate(1, zeros(1), [update("a", 1.0, examples=1), update("b", 5.0, examples=3)])
    np.testing.assert_allclose(out["w"], [(1 * 1 + 5 * 3) / 4])
    assert out["w"].dtype == np.float32


def test_bucketing_hands_the_inner_strategy_one_weighted_mean_per_bucket():
    values = {"a": 0.0, "b": 4.0, "c": 10.0, "d": 20.0, "e": 7.0}
    examples = {"a": 1, "b": 3, "c": 1, "d": 1, "e": 2}
    inner = Recorder()
    Bucketing(inner, bucket_size=2, seed=3).aggregate(
        1, zeros(1), [update(p, values[p], examples=examples[p]) for p in values]
    )
    members = [bucket.party.split("+") for bucket in inner.seen]
    assert sorted(len(m) for m in members) == [1, 2, 2]  # 5 updates: two pairs and one left over
    assert sorted(p for m in members for p in m) == list(values)  # every party in exactly one bucket
    for bucket, parties in zip(inner.seen, members, strict=True):
        assert bucket.num_examples == sum(examples[p] for p in parties)
        mean = sum(values[p] * examples[p] for p in parties) / bucket.num_examples  # e.g. a+b: (0 + 12) / 4 = 3
        np.testing.assert_allclose(bucket.params["w"], [mean])


def test_bucketing_draws_the_same_buckets_for_the_same_seed_and_round():
    first, resumed = Bucketing(CoordinateMedian(), seed=7), Bucketing(CoordinateMedian(), seed=7)
    assert first.buckets(4, 10) == resumed.buckets(4, 10)
    assert len({str(first.buckets(r, 10)) for r in range(1, 6)}) > 1  # reshuffled from round to round


def test_bucketing_of_size_one_is_the_inner_strategy():
    updates = [update("a", 1.0), update("b", 2.0), update("evil", -1e6)]
    out = build_strategy("bucketing", inner="median", bucket_size=1, seed=0).aggregate(1, zeros(1), updates)
    np.testing.assert_array_equal(out["w"], [1.0])


def test_bucketing_options_reach_it_and_its_inner_strategy():
    strategy = build_strategy("bucketing", inner="trimmed_mean", inner_options={"beta": 0.1}, bucket_size=3)
    assert (strategy.bucket_size, strategy.inner.beta) == (3, 0.1)
    with pytest.raises(ValueError, match="bucket_size"):
        build_strategy("bucketing", bucket_size=0)


def test_mixing_then_median_recovers_the_honest_mean_that_plain_median_misses():
    honest = [update(p, v) for p, v in zip("abcdef", (0.0, 2.0, 4.0, 6.0, 8.0, 10.0), strict=True)]
    evil = [update("x", -1000.0), update("y", -1000.0)]
    plain = build_strategy("median").aggregate(1, zeros(1), honest + evil)
    np.testing.assert_allclose(plain["w"], [3.0])  # sorted: -1000, -1000, 0, 2 | 4, 6, 8, 10
    # f=2: each honest update's 6 nearest are the 6 honest ones, so each becomes their mean, 5
    mixed = build_strategy("mixing", inner="median", f=2).aggregate(1, zeros(1), honest + evil)
    np.testing.assert_allclose(mixed["w"], [5.0])


def test_mixing_keeps_names_and_example_counts_for_the_inner_strategy():
    inner = Recorder()
    NearestNeighbourMixing(inner, f=0).aggregate(1, zeros(1), [update("a", 1.0, examples=3), update("b", 3.0)])
    assert [(u.party, u.num_examples) for u in inner.seen] == [("a", 3), ("b", 1)]
    np.testing.assert_allclose([u.params["w"][0] for u in inner.seen], [2.0, 2.0])


def test_mixing_options_reach_it_and_its_inner_strategy():
    strategy = build_strategy("mixing", inner="trimmed_mean", inner_options={"beta": 0.2}, f=2)
    assert (strategy.f, strategy.inner.beta) == (2, 0.2)
    with pytest.raises(ValueError, match="f must be non-negative"):
        build_strategy("mixing", f=-1)


@pytest.mark.parametrize("name", [name for name in strategy_names() if name != "dp"])
def test_a_chain_without_dp_has_no_privacy_account(name: str) -> None:
    options = {"clipping": {"max_norm": 1.0}, "bucketing": {"seed": 0}, "mixing": {"f": 0}}.get(name, {})
    assert build_strategy(name, **options).privacy() is None  # wrappers default to fedavg inside
    if name in {"clipping", "bucketing", "mixing"}:
        assert build_strategy(name, inner="fedadam", **options).privacy() is None
        assert build_strategy(name, inner="clipping", inner_options={"max_norm": 1.0}, **options).privacy() is None

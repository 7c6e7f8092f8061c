"""FedAvg and its cache-blocked kernel on arrays a person can check by hand."""

import numpy as np
import pytest

from components.core.kernels import CHUNK, WeightedMean, weighted_mean
from components.core.strategies import ClientUpdate, build_strategy


def test_weighted_mean_by_hand():
    a = {"w": np.array([0.0, 2.0]), "b": np.array([1.0])}
    b = {"w": np.array([4.0, 6.0]), "b": np.array([3.0])}
    out = weighted_mean([a, b], [1, 3])  # (1*a + 3*b) / 4
    np.testing.assert_allclose(out["w"], [3.0, 5.0])
    np.testing.assert_allclose(out["b"], [2.5])
    assert out["w"].dtype == np.float32


def test_fedavg_weights_by_examples():
    updates = [
        ClientUpdate("alpha", {"w": np.array([1.0, 1.0], dtype=np.float32)}, num_examples=10),
        ClientUpdate("beta", {"w": np.array([3.0, -1.0], dtype=np.float32)}, num_examples=30),
    ]
    out = build_strategy("fedavg").aggregate(1, {"w": np.zeros(2, dtype=np.float32)}, updates)
    np.testing.assert_allclose(out["w"], [2.5, -0.5])


def test_blocked_mean_equals_the_float64_mean_across_block_edges():
    rng = np.random.default_rng(0)
    shapes = {"w": (3, CHUNK + 7), "b": (5,), "empty": (0,)}
    updates = [{n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()} for _ in range(40)]
    weights = rng.integers(1, 1000, size=40).tolist()
    out = weighted_mean(updates, weights)
    for name in shapes:
        stacked = np.stack([u[name].astype(np.float64) for u in updates])
        expected = np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1) / sum(weights)
        assert out[name].dtype == np.float32 and out[name].shape == shapes[name]
        np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-6)


def test_mean_added_one_at_a_time():
    acc = WeightedMean()
    for value in (1.0, 2.0, 3.0):
        acc.add({"w": np.array([value])}, 1.0)
    assert acc.total_weight == 3.0
    np.testing.assert_allclose(acc.result()["w"], [2.0])


def test_mean_of_nothing_raises():
    with pytest.raises(ValueError, match="nothing"):
        WeightedMean().result()


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy 'fedmagic'"):
        build_strategy("fedmagic")

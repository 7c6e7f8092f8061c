"""Robust aggregation kernels on arrays a person can check by hand."""

import numpy as np
import pytest

from components.core.kernels import (
    clip_delta,
    coordinate_median,
    krum_scores,
    multi_krum,
    multi_krum_selection,
    nearest_neighbour_mixing,
    trimmed_mean,
)


def one(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float32)}


def test_coordinate_median_odd_count():
    out = coordinate_median([one(1, 10), one(2, -5), one(100, 0)])
    np.testing.assert_array_equal(out["w"], [2, 0])
    assert out["w"].dtype == np.float32


def test_coordinate_median_even_count_averages_the_middle_pair():
    out = coordinate_median([one(1), one(2), one(4), one(100)])
    np.testing.assert_array_equal(out["w"], [3])


def test_coordinate_median_works_per_tensor():
    a = {"w": np.array([[1.0, 2.0]]), "b": np.array([5.0])}
    b = {"w": np.array([[3.0, 0.0]]), "b": np.array([7.0])}
    c = {"w": np.array([[2.0, 9.0]]), "b": np.array([6.0])}
    out = coordinate_median([a, b, c])
    np.testing.assert_array_equal(out["w"], [[2.0, 2.0]])
    np.testing.assert_array_equal(out["b"], [6.0])


def test_trimmed_mean_drops_the_extremes_per_coordinate():
    updates = [one(1, 50), one(2, -1), one(3, 0), one(4, 1), one(-90, 2)]
    out = trimmed_mean(updates, beta=0.2)  # drops 1 lowest and 1 highest per coordinate
    np.testing.assert_allclose(out["w"], [(1 + 2 + 3) / 3, (0 + 1 + 2) / 3])


def test_trimmed_mean_with_beta_zero_is_the_mean():
    np.testing.assert_allclose(trimmed_mean([one(1), one(2), one(6)], beta=0.0)["w"], [3.0])


def test_trimmed_mean_rejects_beta_of_a_half():
    with pytest.raises(ValueError, match="beta"):
        trimmed_mean([one(1)], beta=0.5)


def test_krum_scores_by_hand():
    # Points 0, 1, 2 and an outlier 10 on a line; f=0 keeps n - f - 2 = 2 neighbours.
    updates = [one(0), one(1), one(2), one(10)]
    scores = krum_scores(updates, f=0)
    # 0: nearest 1 and 2 -> 1 + 4;  1: 0 and 2 -> 1 + 1;  2: 1 and 0 -> 1 + 4;  10: 2 and 1 -> 64 + 81
    np.testing.assert_allclose(scores, [5, 2, 5, 145])


def test_krum_needs_more_than_2f_plus_2_updates():
    with pytest.raises(ValueError, match="more than 2f \\+ 2"):
        krum_scores([one(0), one(1), one(2), one(3)], f=1)


def test_multi_krum_leaves_out_the_outliers():
    updates = [one(0), one(1), one(2), one(3), one(-50), one(80)]
    assert multi_krum_selection(updates, f=1, m=4) == [0, 1, 2, 3]
    np.testing.assert_allclose(multi_krum(updates, f=1, m=4)["w"], [1.5])


def test_multi_krum_weights_the_kept_updates():
    updates = [one(0), one(1), one(2), one(3), one(-50), one(80)]
    out = multi_krum(updates, f=1, m=2, weights=[1, 3, 1, 1, 1, 1])  # keeps 1 and 2 (the most central)
    np.testing.assert_allclose(out["w"], [(3 * 1 + 1 * 2) / 4])


def test_nearest_neighbour_mixing_by_hand():
    # f=1 of 4: each update becomes the mean of its 3 nearest, itself included.
    mixed = nearest_neighbour_mixing([one(0, 0), one(1, 0), one(2, 0), one(100, 3)], f=1)
    # 0, 1 and 2 each have {0, 1, 2} -> (1, 0); 100 has {100, 2, 1} -> (103/3, 1)
    expected = [[1, 0], [1, 0], [1, 0], [103 / 3, 1]]
    for out, want in zip(mixed, expected, strict=True):
        np.testing.assert_allclose(out["w"], want, rtol=1e-6)
        assert out["w"].dtype == np.float32


def test_nearest_neighbour_mixing_with_f_zero_is_the_mean_everywhere():
    mixed = nearest_neighbour_mixing([one(1), one(2), one(6)], f=0)
    np.testing.assert_allclose([m["w"][0] for m in mixed], [3, 3, 3])


def test_nearest_neighbour_mixing_needs_more_than_2f_updates():
    with pytest.raises(ValueError, match="more than 2f = 4"):
        nearest_neighbour_mixing([one(0), one(1), one(2), one(3)], f=2)


def test_clip_delta_scales_long_deltas_to_the_bound():
    reference = {"w": np.array([1.0, 1.0])}
    clipped, norm = clip_delta({"w": np.array([4.0, 5.0])}, reference, max_norm=1.0)  # delta (3, 4), norm 5
    assert norm == 5.0
    np.testing.assert_allclose(clipped["w"], [1.6, 1.8])


def test_clip_delta_leaves_short_deltas_alone():
    reference = {"w": np.array([0.0, 0.0])}
    clipped, norm = clip_delta({"w": np.array([0.3, 0.4])}, reference, max_norm=1.0)
    assert norm == pytest.approx(0.5)
    np.testing.assert_allclose(clipped["w"], [0.3, 0.4])


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        coordinate_median([])

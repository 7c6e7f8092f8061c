"""Boundary checks on updates before they are aggregated."""

import numpy as np
import pytest

from components.core.errors import UpdateRejected
from components.core.strategies import ClientUpdate
from components.core.update_checks import check_update, screen_updates

LAYOUT = {"w": ((2,), "float32"), "b": ((1,), "float32")}


def params(w=(0.0, 0.0), b=(0.0,), dtype=np.float32) -> dict[str, np.ndarray]:
    return {"w": np.array(w, dtype=dtype), "b": np.array(b, dtype=dtype)}


def test_a_well_formed_update_passes():
    check_update(params(w=(3.0, 4.0)), LAYOUT, max_norm=5.0, reference=None)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"w": np.zeros(2, dtype=np.float32)}, "missing \\['b'\\]"),
        ({**params(), "extra": np.zeros(1, dtype=np.float32)}, "unexpected \\['extra'\\]"),
        (params(w=(0.0, 0.0, 0.0)), "shape \\(3,\\), expected \\(2,\\)"),
        (params(dtype=np.float64), "dtype float64, expected float32"),
        (params(w=(np.nan, np.inf)), "2 non-finite values"),
        ({"w": [0.0, 0.0], "b": np.zeros(1, dtype=np.float32)}, "is a list, not an array"),
    ],
)
def test_malformed_updates_are_rejected_with_the_reason(bad, reason):
    with pytest.raises(UpdateRejected, match=reason):
        check_update(bad, LAYOUT, max_norm=None, reference=None)


def test_norm_bound_applies_to_the_delta_from_the_reference():
    reference = params(w=(1.0, 1.0), b=(0.0,))
    check_update(params(w=(4.0, 5.0)), LAYOUT, max_norm=5.0, reference=reference)  # delta (3, 4, 0)
    with pytest.raises(UpdateRejected, match="distance from the global model is 5, over the bound of 4.9"):
        check_update(params(w=(4.0, 5.0)), LAYOUT, max_norm=4.9, reference=reference)


def test_rejected_updates_are_excluded_and_recorded():
    updates = [
        ClientUpdate("ok", params(w=(1.0, 0.0)), num_examples=5),
        ClientUpdate("nan", params(w=(np.nan, 0.0)), num_examples=5),
        ClientUpdate("huge", params(w=(100.0, 0.0)), num_examples=5),
    ]
    accepted, rejected = screen_updates(updates, LAYOUT, max_norm=10.0, reference=params())
    assert [u.party for u in accepted] == ["ok"]
    assert set(rejected) == {"nan", "huge"}
    assert "non-finite" in rejected["nan"] and "over the bound of 10" in rejected["huge"]

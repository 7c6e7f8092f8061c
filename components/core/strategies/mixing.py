"""Nearest-neighbour mixing (Allouah et al. 2023, "Fixing by Mixing") as a wrapper around a robust rule.

Before the wrapped strategy aggregates, each update is replaced by the mean of its ``n - f`` nearest
updates (``components.core.kernels.nearest_neighbour_mixing``). Coordinate-wise rules such as the median and
the trimmed mean lose accuracy under non-IID data because honest updates spread widely and ``f`` bad
ones shift every coordinate's order statistics; after mixing, the honest updates sit close to their
common mean and the inner rule has much less room to be pushed. ``f`` is the number of bad parties the
wrapper must tolerate, as for Multi-Krum; it needs more than ``2f`` updates in a round.

Each mixed update keeps its party's name and example count, so the inner rule still weighs by rows.

Mixing may wrap ``dp`` in local mode (the updates are already private; mixing them is
post-processing) but not in central mode: there each mixed update averages up to ``n - f`` raw
updates, so one party can move every update that central DP then clips and noises, and the
accountant's one-update-per-party sensitivity would understate epsilon by up to a factor ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.core.kernels import nearest_neighbour_mixing
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Strategy, Wrapping


class NearestNeighbourMixing(Wrapping):
    """Feed ``inner`` each update averaged with its ``n - f - 1`` nearest neighbours."""

    name = "mixing"

    def __init__(self, inner: Strategy, f: int = 1) -> None:
        if f < 0:
            raise ValueError(f"f must be non-negative, got {f}")
        account = inner.privacy()
        if account is not None and not account.party_updates_private:
            raise ValueError(
                "mixing cannot wrap central-mode dp: each mixed update depends on many parties, so one party "
                "could move every update dp clips and the accounted epsilon would be too small; "
                "use dp in local mode, or leave mixing out of a central-dp chain"
            )
        self.inner = inner
        self.f = int(f)

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        mixed = nearest_neighbour_mixing([update.params for update in updates], self.f)
        pairs = zip(updates, mixed, strict=True)
        return self.inner.aggregate(
            round_number, current, [ClientUpdate(u.party, params, u.num_examples, u.metrics) for u, params in pairs]
        )

"""Client-level differential privacy (DP-FedAvg, McMahan et al. 2018) as a wrapper around any strategy.

Central mode: the server clips each party's delta to ``clip_norm``, averages the clipped deltas with
equal weight and adds Gaussian noise of standard deviation ``noise_multiplier * clip_norm / n`` to
the mean (``n`` = updates in the round, treated as public). The wrapped strategy then sees that one
private aggregate as a single update, so whatever it does (FedAvg applies it, FedAdam takes an
adaptive step) is post-processing and keeps the guarantee.

Local mode: each party calls ``privatize_update`` before sending (clip, then noise of standard
deviation ``noise_multiplier * clip_norm``); the server only averages. A party's release changes by
at most ``2 * clip_norm`` between any two of its datasets, so it is accounted as a Gaussian
mechanism with multiplier ``noise_multiplier / 2`` and no sampling.

Privacy is accounted with opacus's Rényi-DP analysis of the sampled Gaussian mechanism, one step
per round. ``sample_rate`` is the probability that a party takes part in a round (1.0 when every
party is asked every round; below 1 it assumes parties are Poisson-sampled). A fixed ``seed`` makes
the noise reproducible for experiments and voids the guarantee against anyone who knows the seed;
leave it ``None`` in production.

The run reads the privacy spent through ``strategy.privacy()``, which every strategy has and every
wrapper passes through, so a ``DifferentialPrivacy`` layer is accounted wherever it sits in a chain
(e.g. ``clipping`` or ``bucketing`` around ``dp``). A chain holds at most one DP layer: nesting
``dp`` inside ``dp`` (at any depth) is refused at construction, since the two guarantees would need
composing and the second layer would see one already-noised aggregate. ``mixing`` may wrap only
local-mode ``dp`` (see ``components.core.strategies.mixing``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from components.core.errors import BudgetExceeded
from components.core.kernels import clip_delta
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, DpMode, Strategy, with_prefix, without_prefix

__all__ = ["DifferentialPrivacy", "DpAccount", "DpMode", "RdpAccountant", "privatize_update"]


class RdpAccountant:
    """Privacy spent by repeated sampled Gaussian mechanisms, as opacus's RDP accountant computes it."""

    def __init__(self, orders: Sequence[float] | None = None) -> None:
        self._orders = list(orders) if orders is not None else None
        self._opacus: Any = None  # built on first use: importing opacus loads torch (seconds), which
        # validating a config builds every strategy and must not wait for

    @property
    def _accountant(self) -> Any:
        if self._opacus is None:
            from opacus.accountants import RDPAccountant

            self._opacus = RDPAccountant()
        return self._opacus

    @property
    def orders(self) -> list[float]:
        if self._orders is None:
            from opacus.accountants import RDPAccountant

            self._orders = list(RDPAccountant.DEFAULT_ALPHAS)
        return self._orders

    def record(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        for _ in range(steps):
            self._accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)

    @property
    def steps(self) -> int:
        return sum(count for _, _, count in self._accountant.history)

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (0 before any step)."""
        if not self._accountant.history:
            return 0.0
        return float(self._accountant.get_epsilon(delta=delta, alphas=self.orders))

    def epsilon_after(self, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
        """Epsilon that would be spent after ``steps`` more steps, without recording them."""
        future = copy.deepcopy(self)
        future.record(noise_multiplier, sample_rate, steps)
        return future.epsilon(delta)

    def history(self) -> np.ndarray:
        """Rows of (noise multiplier, sample rate, steps), for checkpoints."""
        return np.array(self._accountant.history, dtype=np.float64).reshape(-1, 3)

    def load_history(self, rows: np.ndarray) -> None:
        self._accountant.history = [(float(z), float(q), int(n)) for z, q, n in np.asarray(rows).reshape(-1, 3)]


def _noise_rng(seed: int | None, round_number: int) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else [seed, round_number])


def privatize_update(
    params: Params,
    reference: Params,
    clip_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator,
    frozen: Sequence[str] = (),
) -> Params:
    """Local DP for a party: clip its delta from ``reference`` to ``clip_norm`` and add
    N(0, (noise_multiplier * clip_norm)^2) to every coordinate; ``frozen`` tensors are sent unchanged
    from ``reference``."""
    trained = {name: array for name, array in reference.items() if name not in frozen}
    clipped, _ = clip_delta(params, trained, clip_norm)
    out = {name: np.array(reference[name], copy=True) for name in frozen}
    for name, array in clipped.items():
        noise = rng.normal(0.0, noise_multiplier * clip_norm, size=array.shape)
        out[name] = (array + noise).astype(array.dtype)
    return {name: out[name] for name in reference}


class DpAccount:
    """The ``PrivacyAccount`` of one ``DifferentialPrivacy`` layer: a live view of its accountant and settings."""

    def __init__(self, layer: DifferentialPrivacy) -> None:
        self._layer = layer

    @property
    def mode(self) -> DpMode:
        return self._layer.mode

    @property
    def party_updates_private(self) -> bool:
        return self._layer.mode == "local"

    @property
    def clip_norm(self) -> float:
        return self._layer.clip_norm

    @property
    def noise_multiplier(self) -> float:
        """As configured; the accountant uses ``accounted_noise_multiplier`` (halved in local mode)."""
        return self._layer.noise_multiplier

    @property
    def sample_rate(self) -> float:
        return self._layer.sample_rate

    @property
    def rounds(self) -> int:
        return self._layer.accountant.steps

    @property
    def accountant(self) -> str:
        return "rdp"  # RdpAccountant: opacus's RDP accountant

    def epsilon(self, delta: float) -> float:
        return self._layer.accountant.epsilon(delta)

    def epsilon_after_next_round(self, delta: float) -> float:
        layer = self._layer
        return layer.accountant.epsilon_after(layer.accounted_noise_multiplier, layer.accounted_sample_rate, 1, delta)

    def check_budget(self, epsilon_budget: float, delta: float) -> None:
        after = self.epsilon_after_next_round(delta)
        if after > epsilon_budget:
            raise BudgetExceeded(
                f"privacy budget exhausted: round {self.rounds + 1} would bring epsilon to {after:.3f} "
                f"at delta={delta:g}, over the budget of {epsilon_budget:g} (spent so far: {self.epsilon(delta):.3f}); "
                "the run stops before that round"
            )

    def __repr__(self) -> str:
        layer = self._layer
        return (
            f"DpAccount(mode={layer.mode!r}, clip_norm={layer.clip_norm:g}, "
            f"noise_multiplier={layer.noise_multiplier:g}, sample_rate={layer.sample_rate:g}, rounds={self.rounds})"
        )


class DifferentialPrivacy:
    """DP-FedAvg around ``inner``; ``frozen`` names tensors parties never train (e.g. fitted
    standardisation statistics), kept at ``current`` and left out of clipping and noise."""

    name = "dp"

    def __init__(
        self,
        inner: Strategy,
        clip_norm: float,
        noise_multiplier: float,
        mode: DpMode = "central",
        sample_rate: float = 1.0,
        seed: int | None = None,
        frozen: Sequence[str] = (),
    ) -> None:
        if clip_norm <= 0 or noise_multiplier <= 0:
            raise ValueError("clip_norm and noise_multiplier must be positive")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if mode not in ("central", "local"):
            raise ValueError(f"mode must be 'central' or 'local', got {mode!r}")
        if inner.privacy() is not None:
            raise ValueError(
                "dp cannot wrap a strategy that already contains dp: a chain holds at most one DP layer "
                "(the inner one would only see this layer's single noised aggregate, and the two "
                "accounts are not composed); configure one dp layer"
            )
        self.inner = inner
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.mode: DpMode = mode
        self.sample_rate = float(sample_rate)
        self.seed = seed
        self.frozen = tuple(frozen)
        self.accountant = RdpAccountant()
        self._account = DpAccount(self)

    @property
    def accounted_noise_multiplier(self) -> float:
        """Noise relative to the sensitivity of what is released (halved in local mode, see module doc)."""
        return self.noise_multiplier if self.mode == "central" else self.noise_multiplier / 2

    @property
    def accounted_sample_rate(self) -> float:
        return self.sample_rate if self.mode == "central" else 1.0

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        if not updates:
            raise ValueError("cannot aggregate an empty list of updates")
        trained = {n: np.asarray(a, dtype=np.float64) for n, a in current.items() if n not in self.frozen}
        total = {name: np.zeros_like(array) for name, array in trained.items()}
        for update in updates:
            if self.mode == "central":
                params, _ = clip_delta(update.params, trained, self.clip_norm)
            else:
                params = update.params
            for name in total:
                total[name] += np.asarray(params[name], dtype=np.float64) - trained[name]
        count = len(updates)
        rng = _noise_rng(self.seed, round_number)
        private = dict(current)
        for name, delta_sum in total.items():
            mean = delta_sum / count
            if self.mode == "central":
                mean += rng.normal(0.0, self.noise_multiplier * self.clip_norm / count, size=mean.shape)
            private[name] = (trained[name] + mean).astype(current[name].dtype)
        self.accountant.record(self.accounted_noise_multiplier, self.accounted_sample_rate)
        aggregate = ClientUpdate(party="dp-aggregate", params=private, num_examples=count)
        return self.inner.aggregate(round_number, current, [aggregate])

    def privacy(self) -> DpAccount:
        """This layer's account (the same live object every call)."""
        return self._account

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta``, per party (``privacy().epsilon``)."""
        return self._account.epsilon(delta)

    def check_budget(self, epsilon_budget: float, delta: float) -> None:
        """Raise BudgetExceeded if running one more round would spend more than ``epsilon_budget``
        (``privacy().check_budget``)."""
        self._account.check_budget(epsilon_budget, delta)

    def training_overrides(self) -> dict[str, Any]:
        return self.inner.training_overrides()

    def state(self) -> Params:
        return {"dp.history": self.accountant.history(), **with_prefix(self.inner.state(), "inner.")}

    def load_state(self, state: Params) -> None:
        self.accountant.load_history(state.get("dp.history", np.zeros((0, 3))))
        self.inner.load_state(without_prefix(state, "inner."))

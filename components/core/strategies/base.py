"""The strategy interface: maths on updates, never a socket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from components.core.kernels import RunningMean
from components.core.params import Params

DpMode = Literal["central", "local"]


@dataclass(frozen=True)
class ClientUpdate:
    """One party's reply to a training round: its new local weights and how many rows made them."""

    party: str
    params: Params
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


class PrivacyAccount(Protocol):
    """The differential-privacy bookkeeping of a strategy chain, as the run needs it.

    One account stands for the one DP layer of a chain (``strategy.privacy()``); it is live, so it
    reflects every round aggregated and every checkpoint loaded since it was handed out. Epsilons are
    per party, at the ``delta`` the caller passes.
    """

    @property
    def mode(self) -> DpMode:
        """``"central"``: the coordinator noises the aggregate; ``"local"``: each party noises its own update."""
        ...

    @property
    def party_updates_private(self) -> bool:
        """True if each party's update, as the coordinator receives it, is itself DP (local mode).

        False in central mode: individual updates are raw at the coordinator and only the aggregate
        is private, so anything computed from single updates (contribution values, per-party
        metrics) is not covered by the accounted epsilon.
        """
        ...

    @property
    def rounds(self) -> int:
        """Rounds accounted so far."""
        ...

    @property
    def accountant(self) -> str:
        """Which accountant turns the rounds into epsilon (e.g. ``rdp``: opacus's Renyi-DP accountant)."""
        ...

    @property
    def clip_norm(self) -> float:
        """The L2 bound on one party's update delta (what local mode asks each party to clip to)."""
        ...

    @property
    def noise_multiplier(self) -> float:
        """Gaussian noise standard deviation relative to ``clip_norm``."""
        ...

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far (0 before any round)."""
        ...

    def epsilon_after_next_round(self, delta: float) -> float:
        """Epsilon that will have been spent once one more round is aggregated; records nothing."""
        ...

    def check_budget(self, epsilon_budget: float, delta: float) -> None:
        """Raise ``BudgetExceeded`` if one more round would bring epsilon above ``epsilon_budget``."""
        ...


class Strategy(Protocol):
    """Turns the current global parameters and the round's updates into new global parameters."""

    name: str

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params: ...

    def training_overrides(self) -> dict[str, Any]:
        """Local-training settings the strategy needs parties to use (e.g. FedProx's ``proximal_mu``)."""
        ...

    def state(self) -> Params:
        """Arrays the strategy carries between rounds (for checkpoints); empty if stateless."""
        ...

    def load_state(self, state: Params) -> None: ...

    def privacy(self) -> PrivacyAccount | None:
        """The account of the DP layer anywhere in this chain, or None if nothing in it is DP.

        Wrappers pass their inner strategy's account through, so the run finds DP at any depth.
        """
        ...


@runtime_checkable
class Streaming(Protocol):
    """A strategy whose aggregate is a running weighted mean: the rounds may fold each update in as it arrives
    (``running``) instead of holding every update until the round ends; ``aggregate`` gives the same result."""

    def running(self) -> RunningMean: ...


class Stateless:
    """Mixin for strategies that carry nothing between rounds and change nothing in local training."""

    def training_overrides(self) -> dict[str, Any]:
        return {}

    def state(self) -> Params:
        return {}

    def load_state(self, state: Params) -> None:
        return None

    def privacy(self) -> PrivacyAccount | None:
        return None


class Wrapping:
    """Mixin for wrappers that change only the updates: local training, state and privacy are ``inner``'s."""

    inner: Strategy

    def training_overrides(self) -> dict[str, Any]:
        return self.inner.training_overrides()

    def state(self) -> Params:
        return self.inner.state()

    def load_state(self, state: Params) -> None:
        self.inner.load_state(state)

    def privacy(self) -> PrivacyAccount | None:
        return self.inner.privacy()


def with_prefix(state: Params, prefix: str) -> Params:
    """A wrapped strategy's state, renamed ``prefix + name`` so it can sit beside the wrapper's own."""
    return {prefix + name: array for name, array in state.items()}


def without_prefix(state: Params, prefix: str) -> Params:
    """The part of ``state`` whose names start with ``prefix``, with the prefix removed."""
    return {name[len(prefix) :]: array for name, array in state.items() if name.startswith(prefix)}

"""The strategy interface: maths on updates, never a socket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from components.core.params import Params


@dataclass(frozen=True)
class ClientUpdate:
    """One party's reply to a training round: its new local weights and how many rows made them."""

    party: str
    params: Params
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


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


class Stateless:
    """Mixin for strategies that carry nothing between rounds and change nothing in local training."""

    def training_overrides(self) -> dict[str, Any]:
        return {}

    def state(self) -> Params:
        return {}

    def load_state(self, state: Params) -> None:
        return None


class Wrapping:
    """Mixin for wrappers that change only the updates: local training and state are ``inner``'s."""

    inner: Strategy

    def training_overrides(self) -> dict[str, Any]:
        return self.inner.training_overrides()

    def state(self) -> Params:
        return self.inner.state()

    def load_state(self, state: Params) -> None:
        self.inner.load_state(state)


def with_prefix(state: Params, prefix: str) -> Params:
    """A wrapped strategy's state, renamed ``prefix + name`` so it can sit beside the wrapper's own."""
    return {prefix + name: array for name, array in state.items()}


def without_prefix(state: Params, prefix: str) -> Params:
    """The part of ``state`` whose names start with ``prefix``, with the prefix removed."""
    return {name[len(prefix) :]: array for name, array in state.items() if name.startswith(prefix)}

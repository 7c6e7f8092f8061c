"""The strategy interface: maths on updates, never a socket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from components.params import Params


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

    def state(self) -> Params:
        """Arrays the strategy carries between rounds (for checkpoints); empty if stateless."""
        ...

    def load_state(self, state: Params) -> None: ...

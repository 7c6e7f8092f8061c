"""One training round under secure aggregation, driven through the coordinator.

The coordinator relays keys and encrypted shares, receives only masked vectors, and learns only
their sum. Each party's vector is ``[n * w for every trained tensor] + [n]`` (n = its rows), so
the unmasked sum gives the example-weighted mean that FedAvg needs. Fitted input statistics
(``standardize.*``) are not trained and stay as the coordinator sent them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.core.errors import ProtocolError, QuorumNotReached
from components.core.params import Layout, Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import parse_body
from components.core.secagg.encoding import FixedPoint
from components.core.secagg.protocol import (
    AdvertiseKeys,
    EncryptedShares,
    MaskedInput,
    SecAggConfig,
    SecAggServer,
    UnmaskShares,
)
from components.core.secagg.vectors import decode_mean, vector_length
from components.core.update_checks import check_update
from components.run.coordinator import Coordinator, Exchange


@dataclass
class SecureRoundResult:
    params: Params
    participants: list[str]
    total_examples: int
    problems: dict[str, str] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0


class SecureRound:
    """The four exchanges of one secure round: keys, shares, masked training, unmasking."""

    def __init__(
        self,
        coordinator: Coordinator,
        run_id: str,
        round_number: int,
        layout: Layout,
        threshold: int,
        timeout_s: float,
        *,
        length: int | None = None,
        codec: FixedPoint | None = None,
    ) -> None:
        """``length`` and ``codec`` of the masked vectors: by default a training update's (``layout``'s)."""
        self.coordinator = coordinator
        self.run_id = run_id
        self.round_number = round_number
        self.layout = layout
        self.timeout_s = timeout_s
        self.config = SecAggConfig(
            session=f"{run_id}/{round_number}",
            threshold=threshold,
            vector_length=length if length is not None else vector_length(layout),
            codec=codec or FixedPoint(),
        )
        self.server = SecAggServer(self.config)
        self.result = SecureRoundResult(params={}, participants=[], total_examples=0)

    def run(self, parties: list[str], train_body: dict[str, Any], current: Params) -> SecureRoundResult:
        total = self.masked_sum(parties, Kind.TRAIN, train_body, current)
        self.result.params, self.result.total_examples = decode_mean(total, current, self.layout)
        return self.result

    def masked_sum(self, parties: list[str], kind: Kind, body: dict[str, Any], tensors: Params) -> np.ndarray:
        """The four exchanges, the third asking ``kind`` with ``body`` and ``tensors`` (each party's reply is one
        ``masked`` vector); the unmasked sum of the survivors' vectors (``result.participants``)."""
        keys = self._exchange(parties, Kind.SECAGG_SETUP, {"config": self.config.model_dump(mode="json")})
        for reply in keys.replies.values():
            self.server.receive_keys(parse_body(AdvertiseKeys, reply.envelope.body))
        roster = self.server.key_roster().model_dump(mode="json")
        shares = self._exchange(sorted(keys.replies), Kind.SECAGG_ROSTER, {"roster": roster})
        for reply in shares.replies.values():
            self.server.receive_shares(parse_body(EncryptedShares, reply.envelope.body))
        bundles = {p: {"secagg_bundle": b.model_dump(mode="json")} for p, b in self.server.share_bundles().items()}
        masked_shape = ((self.config.vector_length,), "uint64")
        trained = self._exchange(
            sorted(bundles),
            kind,
            body,
            tensors=tensors,
            bodies=bundles,
            check=lambda _, tensors: check_update(tensors, {"masked": masked_shape}, None, None),
        )
        for party, reply in trained.replies.items():
            masked = MaskedInput(party=party, masked=reply.tensors["masked"].astype("<u8").tobytes())
            self.server.receive_masked(masked)
        request = self.server.unmask_request().model_dump(mode="json")
        revealed = self._exchange(self.server.survivors, Kind.SECAGG_UNMASK, {"request": request})
        for reply in revealed.replies.values():
            self.server.receive_unmask(parse_body(UnmaskShares, reply.envelope.body))
        self.result.participants = self.server.survivors
        return self.server.result()

    def _exchange(self, parties: list[str], kind: Kind, body: dict[str, Any], **options: Any) -> Exchange:
        exchange = self.coordinator.exchange(
            parties, kind, self.run_id, self.round_number, body, timeout_s=self.timeout_s, **options
        )
        self.result.bytes_up += exchange.bytes_up
        self.result.bytes_down += exchange.bytes_down
        self.result.problems.update(exchange.errors)
        self.result.problems.update({p: f"no {kind.value} reply before deadline" for p in exchange.missing})
        if len(exchange.replies) < self.config.threshold:
            raise QuorumNotReached(
                f"secure aggregation round {self.round_number}: {len(exchange.replies)} {kind.value} replies, "
                f"need {self.config.threshold} ({self.result.problems})"
            )
        return exchange


def check_secure_reply(envelope: Envelope, tensors: Params) -> None:
    """Replies in a secure round carry the sender's own name; anything else is refused."""
    if envelope.body.get("party") not in (None, envelope.sender):
        raise ProtocolError("a secure-aggregation message names another party", code="secagg_sender")

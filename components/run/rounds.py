"""The rounds: a training request out, checked updates in, the strategy's aggregate saved (plain or secure).

Every update already passed the boundary's layout check (names, shapes, dtypes, finite values);
here each reply is checked against the request it answers (its party validated rows this run; its distance
from the global model it was sent), and weighs what the coordinator can vouch for: its example count, at most
the rows its party validated this run, and at most the configured share of the aggregate (``max_party_weight``).

With ``party_updates: none`` and a streaming strategy (FedAvg, FedProx) and no ``max_party_weight`` (a cap needs
every weight first), each update is folded into the running weighted sum the moment it passes its checks and is
not kept: the coordinator holds one model's worth of sums, not one update per party. Robust rules, wrappers and
valuation need every update, so they keep them for the round as before.
"""

from __future__ import annotations

import math

from components.adapters.checkpoints import RunCheckpoints
from components.core.claims import bounded_examples, cap_shares
from components.core.config import FederationConfig
from components.core.contract import Contract
from components.core.errors import ProtocolError, QuorumNotReached
from components.core.kernels import RunningMean
from components.core.params import Layout, Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import TrainRequest, UpdateReply, parse_body
from components.core.selection import largest_first
from components.core.strategies import ClientUpdate, Strategy
from components.core.strategies.base import Streaming
from components.core.update_checks import check_distance
from components.run.coordinator import Coordinator, Reply
from components.run.exchanges import problems
from components.run.records import RoundResult
from components.run.secure_round import SecureRound
from components.run.validation import refuse_contract_mismatches


class Rounds:
    """Trains one round at a time with the run's strategy; the new global model goes to the checkpoints."""

    def __init__(
        self,
        config: FederationConfig,
        contract: Contract,
        coordinator: Coordinator,
        strategy: Strategy,
        layout: Layout,
        checkpoints: RunCheckpoints,
        run_id: str,
    ) -> None:
        self.config = config
        self.contract = contract
        self.coordinator = coordinator
        self.strategy = strategy
        self.layout = layout
        self.checkpoints = checkpoints
        self.run_id = run_id
        self.rows_validated: dict[str, int] = {}  # party -> rows it validated this run: the most it can train on

    def train(self, round_number: int, parties: list[str], request: TrainRequest) -> RoundResult:
        """Run the round from the previous round's model (the caller restored the strategy's state for it)."""
        current = self.checkpoints.load_global(round_number - 1)
        if self.config.secure_aggregation.enabled:
            return self._secure(round_number, parties, request, current)
        return self._plain(round_number, parties, request, current)

    def _aggregate(self, round_number: int, current: Params, updates: list[ClientUpdate]) -> Params:
        try:
            return self.strategy.aggregate(round_number, current, updates)
        except ValueError as error:  # e.g. Multi-Krum or mixing given too few updates for their f
            raise QuorumNotReached(
                f"round {round_number}: strategy {self.config.strategy.name!r} cannot aggregate "
                f"{len(updates)} updates: {error}"
            ) from None

    def streams(self) -> bool:
        """True when this run folds updates into a running sum as they arrive instead of keeping them."""
        return (
            self.config.party_updates == "none"
            and self.config.max_party_weight is None
            and isinstance(self.strategy, Streaming)
        )

    def _plain(self, round_number: int, parties: list[str], request: TrainRequest, current: Params) -> RoundResult:
        """Every party's checked update reaches the strategy (kept for valuation), or is folded into the
        strategy's running mean as it arrives (``streams``)."""
        max_norm = self.config.max_update_norm
        running: RunningMean | None = (
            self.strategy.running() if isinstance(self.strategy, Streaming) and self.streams() else None
        )

        def check(envelope: Envelope, tensors: Params) -> None:
            if envelope.sender not in self.rows_validated:
                raise ProtocolError(f"{envelope.sender} validated no rows this run", code="claim")
            if max_norm is not None:
                check_distance(tensors, current, max_norm)
            if running is not None:  # the last step: the coordinator settles the reply in the same step
                claimed = parse_body(UpdateReply, envelope.body).num_examples
                running.add(tensors, bounded_examples(claimed, self.rows_validated[envelope.sender]))

        exchange = self.coordinator.exchange(
            largest_first(parties, self.rows_validated),
            Kind.TRAIN,
            self.run_id,
            round_number,
            request.model_dump(),
            tensors=current,
            timeout_s=self.config.round_timeout_s,
            check=check,
            keep_tensors=running is None,
        )
        updates = self._weighed(round_number, exchange.replies)
        refuse_contract_mismatches(exchange.errors, self.contract)
        refused = problems(exchange)
        if len(updates) < self.config.min_parties:
            raise QuorumNotReached(
                f"round {round_number}: {len(updates)} usable updates, need {self.config.min_parties} ({refused})"
            )
        aggregated = running.result() if running is not None else self._aggregate(round_number, current, updates)
        self.checkpoints.save_round(round_number, aggregated, self.strategy.state())
        if self.config.party_updates != "none":
            self.checkpoints.save_updates(round_number, updates)
        return RoundResult(
            round=round_number,
            participants=[u.party for u in updates],
            party_metrics={u.party: dict(u.metrics) for u in updates},
            rejected=refused,
            bytes_up=exchange.bytes_up,
            bytes_down=exchange.bytes_down,
        )

    def _weighed(self, round_number: int, replies: dict[str, Reply]) -> list[ClientUpdate]:
        """The replies as updates, each weighing what the coordinator can vouch for: an example count above the
        rows the party validated this run is lowered to them (and counted as a refused claim), then no party
        weighs more than ``max_party_weight`` of the aggregate."""
        claims: dict[str, UpdateReply] = {}
        weights: dict[str, float] = {}
        for party, reply in sorted(replies.items()):
            claims[party] = parse_body(UpdateReply, reply.envelope.body)
            validated = self.rows_validated[party]
            weights[party] = bounded_examples(claims[party].num_examples, validated)
            if claims[party].num_examples > validated:
                self.coordinator.count_refusal(
                    party,
                    ProtocolError(
                        f"round {round_number}: update claims {claims[party].num_examples} examples, but {party} "
                        f"validated {validated} rows this run; weighed as {validated}",
                        code="claim",
                    ),
                )
        if self.config.max_party_weight is not None:
            weights = cap_shares(weights, self.config.max_party_weight)
        return [ClientUpdate(party, replies[party].tensors, weights[party], claims[party].metrics) for party in claims]

    def _secure(self, round_number: int, parties: list[str], request: TrainRequest, current: Params) -> RoundResult:
        """Only the sum of the masked updates is ever known here; the strategy sees it as one update."""
        threshold = max(2, math.ceil(self.config.secure_aggregation.threshold_fraction * len(parties)))
        secure = SecureRound(
            self.coordinator, self.run_id, round_number, self.layout, threshold, self.config.round_timeout_s
        )
        result = secure.run(parties, request.model_dump(), current)
        refuse_contract_mismatches(result.problems, self.contract)
        if len(result.participants) < self.config.min_parties:
            raise QuorumNotReached(
                f"round {round_number}: {len(result.participants)} masked updates, need {self.config.min_parties}"
            )
        summed = ClientUpdate("secure-sum", result.params, result.total_examples)
        aggregated = self._aggregate(round_number, current, [summed])
        self.checkpoints.save_round(round_number, aggregated, self.strategy.state())
        return RoundResult(
            round=round_number,
            participants=result.participants,
            rejected=result.problems,
            bytes_up=result.bytes_up,
            bytes_down=result.bytes_down,
        )

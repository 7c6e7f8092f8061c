"""How good a global model is: on the coordinator's held-out rows, or as the parties' example-weighted mean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from components.core.claims import bounded_examples
from components.core.contract import Contract
from components.core.fairness import FederatedEvaluation, PartyMetrics, federated_evaluation, weighted_mean
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.core.protocol import Kind
from components.core.protocol.bodies import EvaluateRequest, EvaluationReply, parse_body
from components.core.tasks import metrics_of
from components.ml.training import evaluate
from components.run.coordinator import Coordinator
from components.run.exchanges import require_answers
from components.run.validation import refuse_contract_mismatches


class Holdout:
    """Rows no party trains on, held by the coordinator."""

    def __init__(self, frame: pd.DataFrame, features: np.ndarray, labels: np.ndarray) -> None:
        self.frame = frame
        self.features = features
        self.labels = labels


class Evaluator:
    """How good a global model is: held-out metrics when the coordinator has a holdout, otherwise the parties'
    example-weighted mean; the candidate (the final model) is also measured by every party on its own rows."""

    def __init__(
        self,
        spec: ModelSpec,
        contract: Contract,
        holdout: Holdout | None,
        coordinator: Coordinator,
        online: Callable[[], list[str]],
        run_id: str,
        timeout_s: float,
        min_parties: int,
        party_evaluation: bool = True,
    ) -> None:
        self.spec = spec
        self.contract = contract
        self.holdout = holdout
        self.coordinator = coordinator
        self.online = online
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.min_parties = min_parties
        self.party_evaluation = party_evaluation
        self.rows_validated: dict[str, int] = {}  # party -> rows it validated: the most its metrics may weigh
        self._request = EvaluateRequest(model=spec, contract_hash=contract.content_hash).model_dump()

    def metrics(self, params: Params, round_number: int) -> dict[str, float]:
        if self.holdout is not None:
            return evaluate(self.spec, params, self.holdout.features, self.holdout.labels)
        return self._mean(self.parties(params, round_number))

    def candidate(self, params: Params, round_number: int) -> tuple[dict[str, float], FederatedEvaluation]:
        """The final model's metrics (as ``metrics`` gives them) and its federated evaluation: every party's
        metrics on its validation split (or its rows), the holdout's and the fairness gaps."""
        holdout = None
        if self.holdout is not None:
            holdout = evaluate(self.spec, params, self.holdout.features, self.holdout.labels)
        asked = self.party_evaluation or holdout is None
        parties = self.parties(params, round_number) if asked else {}
        headline = holdout if holdout is not None else self._mean(parties)
        return headline, federated_evaluation(parties, holdout, metrics_of(self.spec.task))

    def parties(self, params: Params, round_number: int) -> dict[str, PartyMetrics]:
        """Every online party's metrics of ``params`` on its own rows (metrics only: no row, no prediction)."""
        exchange = self.coordinator.exchange(
            self.online(),
            Kind.EVALUATE,
            self.run_id,
            round_number,
            self._request,
            tensors=params,
            timeout_s=self.timeout_s,
        )
        refuse_contract_mismatches(exchange.errors, self.contract)
        require_answers(exchange, "evaluation", self.min_parties)
        answers = {party: parse_body(EvaluationReply, r.envelope.body) for party, r in exchange.replies.items()}
        return {
            party: PartyMetrics(
                num_examples=bounded_examples(a.num_examples, self.rows_validated.get(party, a.num_examples)),
                metrics=a.metrics,
                validation_split=a.validation_split,
            )
            for party, a in sorted(answers.items())
        }

    def _mean(self, parties: dict[str, PartyMetrics]) -> dict[str, float]:
        return {metric: weighted_mean(parties, metric) for metric in metrics_of(self.spec.task)}

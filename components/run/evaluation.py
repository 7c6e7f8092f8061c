"""How good a global model is: on the coordinator's held-out rows, or as the parties' example-weighted mean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from components.core.contract import Contract
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
    """Held-out metrics when the coordinator has a holdout; otherwise every online party evaluates its own rows."""

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
    ) -> None:
        self.spec = spec
        self.contract = contract
        self.holdout = holdout
        self.coordinator = coordinator
        self.online = online
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.min_parties = min_parties
        self._request = EvaluateRequest(model=spec, contract_hash=contract.content_hash).model_dump()

    def metrics(self, params: Params, round_number: int) -> dict[str, float]:
        if self.holdout is not None:
            return evaluate(self.spec, params, self.holdout.features, self.holdout.labels)
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
        answers = [parse_body(EvaluationReply, r.envelope.body) for r in exchange.replies.values()]
        total = sum(a.num_examples for a in answers)
        return {k: sum(a.metrics[k] * a.num_examples for a in answers) / total for k in metrics_of(self.spec.task)}

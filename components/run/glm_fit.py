"""A GLM fit as the run's rounds: each round is one Newton iteration over the pooled sums of every party.

Round 0's model holds the pooled standardisation (fitted from the parties' profiles, as for every model); round
``k`` sends the current coefficients to every party that validated its rows, adds their sums (each count checked
against the rows the party validated) and takes the Newton step. Every party must answer every iteration: a fit
without one party's rows is not the fit of the pooled rows, so a missing party fails the round (and the flow
retries it). The coefficients are checkpointed each round as the linear model they serve as, with the Newton
state beside them, so a resumed run goes on from the last finished iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.adapters.checkpoints import RunCheckpoints, save_json
from components.core import standardization
from components.core.config import FederationConfig
from components.core.contract import Contract
from components.core.errors import ConfigError, ProtocolError, QuorumNotReached
from components.core.glm.family import Family, family
from components.core.glm.model import to_params
from components.core.glm.newton import NewtonFit, Step
from components.core.glm.secure import GLM_CODEC, check_summands, secure_length, secure_total
from components.core.glm.summary import GlmSummary, summarise
from components.core.glm.sums import GlmSums
from components.core.params import Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import parse_body
from components.core.protocol.glm import GlmSumsReply, GlmSumsRequest
from components.core.update_checks import check_layout
from components.run.coordinator import Coordinator
from components.run.exchanges import problems
from components.run.records import RoundResult
from components.run.secure_round import SecureRound
from components.run.validation import refuse_contract_mismatches

BETA = "glm.beta"
DEVIANCES = "glm.deviances"
PREVIOUS = "glm.previous"


@dataclass(frozen=True)
class _Ask:
    """One iteration's request to every party, and the rows each validated (what its count must be)."""

    round: int
    parties: list[str]
    body: dict[str, Any]
    tensors: Params
    rows_validated: dict[str, int]


class GlmFit:
    """The Newton iterations of one run's GLM; ``summary`` is set once the fit is done."""

    def __init__(
        self,
        config: FederationConfig,
        contract: Contract,
        coordinator: Coordinator,
        checkpoints: RunCheckpoints,
        run_id: str,
    ) -> None:
        self.family: Family = family(config.model.family or "")
        self.ridge = config.model.ridge
        self.max_iterations = config.rounds
        self.secure = config.secure_aggregation
        self.contract = contract
        self.coordinator = coordinator
        self.checkpoints = checkpoints
        self.run_id = run_id
        self.timeout_s = config.round_timeout_s
        self.names = ["intercept", *contract.features]
        self.summary: GlmSummary | None = None
        if self.secure.enabled:
            try:
                check_summands(len(config.parties))
            except ValueError as error:
                raise ConfigError(f"secure_aggregation: {error}") from None

    @property
    def done(self) -> bool:
        return self.summary is not None

    def _newton(self, round_number: int) -> NewtonFit:
        """The Newton state after round ``round_number - 1`` (fresh before the first iteration)."""
        newton = NewtonFit(self.family, len(self.names), ridge=self.ridge, max_iterations=self.max_iterations)
        state = self.checkpoints.load_strategy_state(round_number - 1)
        if BETA in state:
            newton.beta = np.asarray(state[BETA], dtype=np.float64).copy()
            newton.deviances = [float(d) for d in state[DEVIANCES]]
            newton.iteration = round_number - 1
            newton.previous = np.asarray(state[PREVIOUS], dtype=np.float64).copy() if PREVIOUS in state else None
        return newton

    def iterate(self, round_number: int, parties: list[str], rows_validated: dict[str, int]) -> RoundResult:
        """One Newton iteration with every party in ``parties``; the new coefficients are checkpointed."""
        current = self.checkpoints.load_global(round_number - 1)
        fitted = {name: current[name] for name in standardization.fitted_names(current)}
        newton = self._newton(round_number)
        request = GlmSumsRequest(
            family=self.family.name, parties=len(parties), contract_hash=self.contract.content_hash
        ).model_dump()
        tensors = {
            "beta": np.asarray(newton.beta, dtype=np.float64),
            **{name: np.asarray(value, dtype=np.float64) for name, value in fitted.items()},
        }
        gather = self._secure_sums if self.secure.enabled else self._pooled_sums
        total, result = gather(_Ask(round_number, parties, request, tensors, rows_validated))
        step = newton.step(total)
        state: Params = {BETA: step.beta, DEVIANCES: np.asarray(newton.deviances, dtype=np.float64)}
        if newton.previous is not None:
            state[PREVIOUS] = newton.previous
        self.checkpoints.save_round(round_number, to_params(step.beta, self.contract.task, fitted), state)
        if step.done:
            self._finish(step)
        return result

    def _pooled_sums(self, ask: _Ask) -> tuple[GlmSums, RoundResult]:
        """Every party's sums at the request's coefficients, added; each checked against the rows it validated."""
        length = GlmSums.vector_length(len(self.names))

        def check(envelope: Envelope, tensors: Params) -> None:
            check_layout(tensors, {"sums": ((length,), "float64")})
            count = parse_body(GlmSumsReply, envelope.body).count
            if count != ask.rows_validated.get(envelope.sender) or int(round(tensors["sums"][-1])) != count:
                raise ProtocolError(
                    f"GLM sums of {count} rows, but {envelope.sender} validated "
                    f"{ask.rows_validated.get(envelope.sender)} rows this run",
                    code="claim",
                )

        exchange = self.coordinator.exchange(
            ask.parties,
            Kind.GLM_SUMS,
            self.run_id,
            ask.round,
            ask.body,
            tensors=ask.tensors,
            timeout_s=self.timeout_s,
            check=check,
        )
        refuse_contract_mismatches(exchange.errors, self.contract)
        self._require_everyone(ask.round, ask.parties, sorted(exchange.replies), problems(exchange))
        parts = [GlmSums.from_vector(np.asarray(r.tensors["sums"]), len(self.names)) for r in exchange.replies.values()]
        result = RoundResult(
            round=ask.round,
            participants=sorted(exchange.replies),
            bytes_up=exchange.bytes_up,
            bytes_down=exchange.bytes_down,
        )
        return GlmSums.total(parts), result

    def _secure_sums(self, ask: _Ask) -> tuple[GlmSums, RoundResult]:
        """The parties' sums through secure aggregation: the coordinator unmasks only their total."""
        threshold = max(2, math.ceil(self.secure.threshold_fraction * len(ask.parties)))
        length = secure_length(len(self.names))
        secure = SecureRound(
            self.coordinator, self.run_id, ask.round, {}, threshold, self.timeout_s, length=length, codec=GLM_CODEC
        )
        unmasked = secure.masked_sum(ask.parties, Kind.GLM_SUMS, ask.body, ask.tensors)
        outcome = secure.result
        refuse_contract_mismatches(outcome.problems, self.contract)
        self._require_everyone(ask.round, ask.parties, outcome.participants, outcome.problems)
        total = secure_total(unmasked, len(self.names))
        expected = sum(ask.rows_validated.get(party, 0) for party in ask.parties)
        if total.count != expected:
            raise ProtocolError(
                f"the secure GLM sums count {total.count} rows, the parties validated {expected}", code="claim"
            )
        result = RoundResult(
            round=ask.round,
            participants=sorted(outcome.participants),
            rejected=outcome.problems,
            bytes_up=outcome.bytes_up,
            bytes_down=outcome.bytes_down,
        )
        return total, result

    @staticmethod
    def _require_everyone(round_number: int, parties: list[str], answered: list[str], why: dict[str, str]) -> None:
        if sorted(answered) != sorted(parties):
            raise QuorumNotReached(
                f"GLM iteration {round_number}: every party's sums are needed for the pooled fit ({why})"
            )

    def _finish(self, step: Step) -> None:
        assert step.total is not None
        newton_penalty = NewtonFit(self.family, len(self.names), ridge=self.ridge).penalty()
        self.summary = summarise(
            self.family, self.names, step.beta, step.total, step.iteration, step.converged, penalty=newton_penalty
        )
        save_json(self.checkpoints.folder / "glm_summary.json", self.summary.model_dump(mode="json"))

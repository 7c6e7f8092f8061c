"""A GLM fit as the run's rounds: each round is one Newton iteration over the pooled sums of every party.

Round 0's model holds the pooled standardisation (fitted from the parties' profiles, as for every model); round
``k`` sends the current coefficients to every party that validated its rows, adds their sums (each count checked
against the rows the party validated) and takes the Newton step. Every party must answer every iteration: a fit
without one party's rows is not the fit of the pooled rows, so a missing party fails the round (and the flow
retries it). The coefficients are checkpointed each round as the linear model they serve as, with the Newton
state beside them, so a resumed run goes on from the last finished iteration.
"""

from __future__ import annotations

import numpy as np

from components.adapters.checkpoints import RunCheckpoints, save_json
from components.core import standardization
from components.core.contract import Contract
from components.core.errors import ProtocolError, QuorumNotReached
from components.core.glm.family import Family, family
from components.core.glm.model import to_params
from components.core.glm.newton import NewtonFit, Step
from components.core.glm.summary import GlmSummary, summarise
from components.core.glm.sums import GlmSums
from components.core.params import Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import parse_body
from components.core.protocol.glm import GlmSumsReply, GlmSumsRequest
from components.core.update_checks import check_layout
from components.run.coordinator import Coordinator, Exchange
from components.run.exchanges import problems
from components.run.records import RoundResult
from components.run.validation import refuse_contract_mismatches

BETA = "glm.beta"
DEVIANCES = "glm.deviances"


class GlmFit:
    """The Newton iterations of one run's GLM; ``summary`` is set once the fit is done."""

    def __init__(
        self,
        fam: str,
        ridge: float,
        max_iterations: int,
        contract: Contract,
        coordinator: Coordinator,
        checkpoints: RunCheckpoints,
        run_id: str,
        timeout_s: float,
    ) -> None:
        self.family: Family = family(fam)
        self.ridge = ridge
        self.max_iterations = max_iterations
        self.contract = contract
        self.coordinator = coordinator
        self.checkpoints = checkpoints
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.names = ["intercept", *contract.features]
        self.summary: GlmSummary | None = None

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
            newton.iteration = len(newton.deviances)
        return newton

    def iterate(self, round_number: int, parties: list[str], rows_validated: dict[str, int]) -> RoundResult:
        """One Newton iteration with every party in ``parties``; the new coefficients are checkpointed."""
        current = self.checkpoints.load_global(round_number - 1)
        fitted = {name: current[name] for name in standardization.fitted_names(current)}
        newton = self._newton(round_number)
        total, exchange = self._pooled_sums(round_number, parties, newton.beta, fitted, rows_validated)
        step = newton.step(total)
        state: Params = {BETA: step.beta, DEVIANCES: np.asarray(newton.deviances, dtype=np.float64)}
        self.checkpoints.save_round(round_number, to_params(step.beta, self.contract.task, fitted), state)
        if step.done:
            self._finish(step)
        return RoundResult(
            round=round_number,
            participants=sorted(exchange.replies),
            bytes_up=exchange.bytes_up,
            bytes_down=exchange.bytes_down,
        )

    def _pooled_sums(
        self,
        round_number: int,
        parties: list[str],
        beta: np.ndarray,
        fitted: Params,
        rows_validated: dict[str, int],
    ) -> tuple[GlmSums, Exchange]:
        """The sums of every party at ``beta``, added; each reply checked against the rows its party validated."""
        length = GlmSums.vector_length(len(self.names))

        def check(envelope: Envelope, tensors: Params) -> None:
            check_layout(tensors, {"sums": ((length,), "float64")})
            count = parse_body(GlmSumsReply, envelope.body).count
            if count != rows_validated.get(envelope.sender):
                raise ProtocolError(
                    f"GLM sums of {count} rows, but {envelope.sender} validated "
                    f"{rows_validated.get(envelope.sender)} rows this run",
                    code="claim",
                )
            if int(round(tensors["sums"][-1])) != count:
                raise ProtocolError("the sums vector counts other rows than the reply says", code="claim")

        request = GlmSumsRequest(
            family=self.family.name, parties=len(parties), contract_hash=self.contract.content_hash
        )
        tensors = {
            "beta": np.asarray(beta, dtype=np.float64),
            **{name: np.asarray(value, dtype=np.float64) for name, value in fitted.items()},
        }
        exchange = self.coordinator.exchange(
            parties,
            Kind.GLM_SUMS,
            self.run_id,
            round_number,
            request.model_dump(),
            tensors=tensors,
            timeout_s=self.timeout_s,
            check=check,
        )
        refuse_contract_mismatches(exchange.errors, self.contract)
        if len(exchange.replies) < len(parties):
            raise QuorumNotReached(
                f"GLM iteration {round_number}: every party's sums are needed for the pooled fit ({problems(exchange)})"
            )
        parts = [GlmSums.from_vector(np.asarray(r.tensors["sums"]), len(self.names)) for r in exchange.replies.values()]
        return GlmSums.total(parts), exchange

    def _finish(self, step: Step) -> None:
        assert step.total is not None
        newton_penalty = NewtonFit(self.family, len(self.names), ridge=self.ridge).penalty()
        self.summary = summarise(
            self.family, self.names, step.beta, step.total, step.iteration, step.converged, penalty=newton_penalty
        )
        save_json(self.checkpoints.folder / "glm_summary.json", self.summary.model_dump(mode="json"))

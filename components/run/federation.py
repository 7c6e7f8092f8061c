"""One federation run, put together from its parts; each method is one step the flow's tasks call.

The parts: the party directory (who is admitted, online, gone; it owns the endpoint), the rounds
(plain or secure), the evaluator, the settlement (valuation, rewards, reputation), the promoter (gate,
registry) and the recorder (the one writer of the summary, the store, the tracker and DVC). The run
keeps the heavy objects (sockets, tensors) so that tasks pass only ids, paths and typed records.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.adapters.checkpoints import RunCheckpoints, save_json
from components.adapters.code_version import code_version
from components.adapters.contracts import load_contract, read_dataset, split_features
from components.adapters.transport import read_keypair
from components.adapters.workspace import Workspace
from components.core import standardization
from components.core.config import FederationConfig, ModelConfig, StrategyConfig
from components.core.contract import Contract
from components.core.errors import ConfigError, ContractError, RunStateError
from components.core.gates import Approval
from components.core.model_spec import ModelSpec
from components.core.ports import ServedModel
from components.core.protocol import Kind
from components.core.protocol.bodies import LocalPrivacy, RunEnded, TrainRequest
from components.core.protocol.plan import PlanDecision, RunPlan
from components.core.secagg.vectors import vector_length
from components.core.selection import select_parties
from components.core.strategies import Strategy, build_strategy
from components.core.tasks import is_classification
from components.core.update_checks import check_layout
from components.ml.model import parameter_layout
from components.ml.serving import ServedPredictor
from components.run.directory import PartyDirectory
from components.run.edges import RunEdges, workspace_edges
from components.run.evaluation import Evaluator, Holdout
from components.run.federated_stats import collect_stats
from components.run.glm_fit import GlmFit
from components.run.initial_model import initial_model
from components.run.lineage import Lineage, build_lineage
from components.run.plans import agree, require_acceptance, run_plan, statistics_plan
from components.run.promoter import Candidate, Promoter
from components.run.recorder import RunRecorder
from components.run.records import Contributions, Rewards, RoundResult, ValidationResult
from components.run.rounds import Rounds
from components.run.secure_round import check_secure_reply
from components.run.settlement import Settlement, individual_updates_withheld
from components.run.summary import Promotion, RoundMetrics, RoundRow, RunSummary, refuse_finished
from components.run.validation import validate_parties

log = logging.getLogger(__name__)

GLM_NOT_VALUED = (
    "none: a GLM is fitted from every party's sums at once (the fit of the pooled rows); there are no per-party "
    "updates to value"
)


def new_run_id(federation: str) -> str:
    return f"{federation}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{np.random.default_rng().integers(16**4):04x}"


def model_spec(model: ModelConfig, contract: Contract) -> ModelSpec:
    """What every party builds: the configured family, shaped by the contract (columns, classes, task)."""
    if model.input_shape is None:
        model = model.model_copy(update={"input_shape": contract.input_shape})
    try:
        return model.spec(contract.n_features, contract.n_classes, contract.task)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None


def build_run_strategy(config: StrategyConfig, fitted: list[str]) -> Strategy:
    """The configured strategy chain; every ``dp`` layer in it leaves the fitted input statistics un-noised."""

    def freeze(name: str, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(options)
        if name == "dp":
            options.setdefault("frozen", fitted)
        if "inner" in options:
            options["inner_options"] = freeze(options["inner"], options.get("inner_options") or {})
        return options

    try:
        return build_strategy(config.name, **freeze(config.name, config.options))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"strategy {config.name!r}: {error}") from None


class FederationRun:
    """The steps of one run (or of its resume), over the edges in ``edges`` (the workspace's by default)."""

    def __init__(
        self, config: FederationConfig, workspace: Workspace, run_id: str, edges: RunEdges | None = None
    ) -> None:
        self.config = config
        self.workspace = workspace.create()
        self.run_id = run_id
        self.contract = load_contract(config.contract.name, config.contract.version)
        self.contract_hash = self.contract.content_hash  # sent with every request: hashed once
        self.spec = model_spec(config.model, self.contract)
        self.layout = parameter_layout(self.spec)
        self.strategy = build_run_strategy(config.strategy, standardization.fitted_names(self.layout))
        self.checkpoints = RunCheckpoints(workspace.checkpoints, run_id)
        self.held_back: Candidate | None = None  # the final model logged but not registered (``hold_back``)
        refuse_finished(self.workspace.summary_path(run_id))  # before anything of the run is written
        self.lease = self.checkpoints.take_lease()
        self._reputation: dict[str, float] | None = None
        try:
            self._build(config, edges)
        except BaseException:
            self.lease.release()
            raise

    def _build(self, config: FederationConfig, edges: RunEdges | None) -> None:
        run_id = self.run_id
        save_json(self.checkpoints.config, config.model_dump(mode="json"))
        edges = edges or workspace_edges(self.workspace, config.name)
        self.store = edges.store
        self.recorder = RunRecorder(
            run_id, config, self.workspace, edges.tracker, edges.store, edges.metadata, self.checkpoints.writer
        )
        keys = read_keypair(config.coordinator.secret_key_file)
        self.directory = PartyDirectory(config, keys, edges.router, self.recorder)
        self.coordinator = self.directory.coordinator
        self.coordinator.rejected.update(self.recorder.summary.rejected_messages)  # counts survive a resume
        self.coordinator.late.update(self.recorder.summary.late_messages)
        self._install_boundary_checks()
        self.rounds = Rounds(
            config, self.contract, self.coordinator, self.strategy, self.layout, self.checkpoints, run_id
        )
        self.evaluator = Evaluator(
            self.spec,
            self.contract,
            self._load_holdout(),
            self.coordinator,
            self.directory.await_parties,
            run_id,
            config.round_timeout_s,
            config.min_parties,
            party_evaluation=config.evaluation.parties,
        )
        self.settlement = Settlement(
            config,
            self.checkpoints,
            lambda params: self.evaluator.metrics(params, 0),
            GLM_NOT_VALUED
            if config.model.kind == "glm"
            else individual_updates_withheld(
                config.secure_aggregation.enabled, self.strategy.privacy(), kept=config.party_updates != "none"
            ),
            edges.store.reputation_of,
        )
        self.promoter = Promoter(
            config.promotion,
            edges.registry,
            self.contract.task,
            edges.metadata,
            self.workspace.metadata_repo / "champions",
        )
        self.glm = (
            GlmFit(config, self.contract, self.coordinator, self.checkpoints, run_id)
            if config.model.kind == "glm"
            else None
        )

    def _install_boundary_checks(self) -> None:
        """Checks every message of a kind passes, whatever request it claims to answer."""
        secure = self.config.secure_aggregation.enabled
        update_layout = {"masked": ((vector_length(self.layout),), "uint64")} if secure else self.layout
        self.coordinator.boundary_checks[Kind.UPDATE] = lambda _, tensors: check_layout(tensors, update_layout)
        for kind in (Kind.SECAGG_KEYS, Kind.SECAGG_SHARES, Kind.SECAGG_REVEAL):
            self.coordinator.boundary_checks[kind] = check_secure_reply

    def _load_holdout(self) -> Holdout | None:
        if self.config.holdout is None:
            return None
        frame = read_dataset(self.config.holdout, self.contract)
        features, labels = split_features(frame, self.contract)
        return Holdout(frame[self.contract.features], features, labels)

    @property
    def summary(self) -> RunSummary:
        """The run's summary as the recorder keeps it (read it; only the recorder writes it)."""
        return self.recorder.summary

    # ---- steps ----
    def start_tracking(self) -> str:
        return self.recorder.start(self.contract)

    def agree_plan(self, plan: RunPlan | None = None) -> dict[str, PlanDecision]:
        """Every party decides on the run plan (default: this run's training) first; those that refuse it get no
        request of this run."""
        parties = self.directory.await_parties(wait_for_all=True)
        plan = plan or run_plan(self.config, self.spec, self.layout, self.strategy.privacy(), self.run_id)
        decisions = agree(self.coordinator, parties, plan, self.config.approval_timeout_s)
        if plan.purpose == "training":  # a statistics request has no tracked run or summary
            self.recorder.plan_decisions(decisions)  # also when too many refused: the summary names each decision
        require_acceptance(decisions, self.config.min_parties)
        self.directory.leave_out([party for party, d in decisions.items() if d.verdict != "accept"])
        return decisions

    def validate(self) -> ValidationResult:
        """The parties agree on the plan, then each checks its own data against the contract; a contract
        violation anywhere stops the run."""
        self.agree_plan()
        parties = self.directory.await_parties(wait_for_all=True)
        result = validate_parties(
            self.coordinator,
            parties,
            self.contract,
            self.spec,
            self.run_id,
            self.config.round_timeout_s,
            self.config.min_parties,
        )
        self.recorder.validation(result, self.contract)
        self.rounds.rows_validated = result.training_rows()  # a party's validation rows never train
        self.evaluator.rows_validated = {party: s.row_count for party, s in result.summaries.items()}
        if result.failures:
            raise ContractError("data contract violated at " + "; ".join(result.failures))
        return result

    def initialise(self) -> int:
        """Save round 0's model (input scaling fitted from federated sums); the first round to train (resume aware)."""
        last = self.checkpoints.last_round()
        if last >= 0:
            return last + 1
        params = initial_model(
            self.coordinator,
            self.directory.await_parties(),
            self.spec,
            self.contract,
            self.rounds.rows_validated,
            self.run_id,
            self.config.round_timeout_s,
            self.config.min_parties,
        )
        self.checkpoints.save_round(0, params, self.strategy.state())
        self.checkpoints.mark_finished(0, self.summary.mlflow_run_id)
        return 1

    def train_round(self, round_number: int) -> RoundResult:
        """Sample parties, check the privacy budget, train; the new global model is checkpointed.

        A GLM's round is one Newton iteration with every party that validated its rows."""
        started = time.perf_counter()
        if self.glm is not None:
            result = self.glm.iterate(round_number, sorted(self.rounds.rows_validated), self.rounds.rows_validated)
            if self.glm.summary is not None:
                self.recorder.glm(self.glm.summary)
            result.seconds = time.perf_counter() - started
            return result
        if self._reputation is None:  # read once per run: reputation changes only when a run settles
            self._reputation = {row["name"]: row["reputation"] for row in self.store.party_rows()}
        parties = select_parties(
            self.directory.await_parties(),
            self.config.fraction,
            self.config.min_parties,
            self._reputation,
            self.config.training.seed,
            round_number,
        )
        # from the previous round's state, so that a retried round is the same round (and DP is not spent twice)
        self.strategy.load_state(self.checkpoints.load_strategy_state(round_number - 1))
        privacy = self.strategy.privacy()
        budget, delta = self.directory.privacy_budget(parties)
        epsilon_after = None
        if privacy is not None:
            if budget is not None:
                privacy.check_budget(budget, delta)
            epsilon_after = privacy.epsilon_after_next_round(delta)
        training = self.config.training.model_copy(update=self.strategy.training_overrides())
        local = None
        if privacy is not None and privacy.mode == "local":
            local = LocalPrivacy(clip_norm=privacy.clip_norm, noise_multiplier=privacy.noise_multiplier)
        request = TrainRequest(
            model=self.spec,
            training=training,
            epsilon_after_round=epsilon_after,
            delta=delta,
            local_privacy=local,
            contract_hash=self.contract_hash,
        )
        result = self.rounds.train(round_number, parties, request)
        result.seconds = time.perf_counter() - started
        result.epsilon = privacy.epsilon(delta) if privacy is not None else None
        return result

    def evaluate_round(self, trained: RoundResult) -> RoundRow:
        """Evaluate the round's new global model, record the round, then mark it finished (a resume starts after)."""
        started = time.perf_counter()
        params = self.checkpoints.load_global(trained.round)
        metrics = RoundMetrics(**self.evaluator.metrics(params, trained.round))
        self.checkpoints.evaluated()
        row = trained.evaluated(metrics, time.perf_counter() - started)
        self.recorder.round(row)
        self.checkpoints.mark_finished(trained.round, self.summary.mlflow_run_id)
        return row

    @property
    def training_done(self) -> bool:
        """True when no more rounds are needed (a GLM whose fit has converged or ran out of iterations)."""
        return self.glm is not None and self.glm.done

    def stop_early(self, reason: str) -> None:
        """Train no more rounds; the remaining steps use the last finished round."""
        self.recorder.stopped_early(reason)

    def value_contributions(self) -> Contributions:
        result = self.settlement.value(self.summary.rounds, self.directory.names)
        self.recorder.contributions(result)
        return result

    def allocate_rewards(self, contributions: Contributions) -> Rewards:
        result = self.settlement.reward(
            contributions, self.summary.rounds, self.directory.names, self.recorder.reward_model
        )
        self.recorder.rewards(result)
        return result

    def update_reputation(self, contributions: Contributions) -> dict[str, float]:
        changes = self.settlement.reputation(
            contributions, self.summary.rounds, self.directory.names, self.coordinator.rejected
        )
        self.recorder.reputation(changes)
        return {change.party: change.reputation for change in changes}

    def log_final_model(self) -> Candidate:
        """Evaluate the final model at every party (and on the holdout) and log it on the tracking run as the
        registry would serve it, with its lineage and model card: the candidate for promotion."""
        final_round = self.recorder.final_round
        final = self.checkpoints.load_global(final_round)
        metrics, evaluation = self.evaluator.candidate(final, final_round)
        self.recorder.evaluation(evaluation)
        served = ServedModel(
            spec=self.spec.model_dump(mode="json"),
            features=list(self.contract.features),
            classes=[str(c) for c in self.contract.classes] if is_classification(self.spec.task) else [],
            task=self.spec.task,
            dtypes={feature: self.contract.dtypes[feature] for feature in self.contract.features},
        )
        example = (
            self.evaluator.holdout.frame.head(5)  # the feature columns as read (float64, int64)
            if self.evaluator.holdout is not None
            else pd.DataFrame(np.zeros((1, len(served.features))), columns=served.features)
        )
        ServedPredictor(served, final).predict(example)  # fails here, not at load, if the model cannot serve
        model_uri = self.recorder.log_model(served, final, example)
        lineage = self._lineage(RoundMetrics(**metrics))
        self.recorder.model_card(lineage.card)
        return Candidate(
            run_id=self.run_id,
            model_uri=model_uri,
            metrics=metrics,
            manifests=self.summary.manifests,
            evaluation=evaluation,
            tags=lineage.tags,
            description=lineage.card.description(),
        )

    def promote(self) -> Promotion:
        """Log the final model and register it as the challenger; the alias moves only if every gate of the
        policy passes. With approval required, a proposal that passed them is returned ``awaiting approval``:
        ``conclude_promotion`` decides it once a person answers."""
        candidate = self.log_final_model()
        promotion = self.promoter.propose(candidate)
        self.recorder.promotion(promotion, RoundMetrics(**candidate.metrics), int(promotion.version or 0))
        return promotion

    def hold_back(self, reason: str) -> Promotion:
        """Log the final model without registering it (``reason``: who decides instead, e.g. a sweep electing one
        of its runs); the candidate is kept as ``held_back`` and the decision is ``deferred``."""
        candidate = self.log_final_model()
        cfg = self.promoter.config
        deferred = Promotion(
            decision="deferred",
            reason=reason,
            model_name=cfg.model_name,
            alias=cfg.alias,
            metric=cfg.metric or "",
            candidate_value=candidate.metrics.get(cfg.metric or ""),
        )
        self.recorder.promotion(deferred, RoundMetrics(**candidate.metrics), None)
        self.held_back = candidate
        return deferred

    def conclude_promotion(self, approval: Approval | None) -> Promotion:
        """Decide a promotion held for approval with a person's answer (None: nobody answered in time)."""
        held = self.summary.promotion
        if held is None or not held.awaiting_approval:
            raise RunStateError(f"run {self.run_id} holds no promotion for approval")
        promotion = self.promoter.conclude(held, approval)
        self.recorder.promotion(promotion, self.summary.final_metrics, int(promotion.version or 0))
        return promotion

    def _lineage(self, metrics: RoundMetrics) -> Lineage:
        """What produced the final model (data, contract, config, code, run) and its card."""
        participants = self.summary.rounds[-1].participants if self.summary.rounds else []
        budget, delta = self.directory.privacy_budget(participants)
        return build_lineage(
            self.summary,
            self.promoter.config.model_name,
            self.contract,
            metrics,
            code_version(),
            self.strategy.privacy(),
            delta,
            budget,
        )

    def finish(self, status: str = "completed", error: str | None = None) -> Path:
        """Write the summary everywhere it belongs, version the final model, release the parties;
        ``error`` is why a failed run stopped."""
        final = self.checkpoints.load_global(self.recorder.final_round) if status == "completed" else None
        path = self.recorder.finish(status, final, self.coordinator.rejected, self.coordinator.late, error)
        if status == "completed" and self.config.party_updates == "until_settled":
            self.checkpoints.discard_updates()  # settled: nothing reads them again
        ended = RunEnded(status=status, reason=error[:2000] if error else None)
        self.coordinator.broadcast(Kind.SHUTDOWN, self.run_id, ended.model_dump())
        return path

    def statistics(self, bins: int = 10) -> Path:
        """Federated descriptive statistics of the contract's features from every listed party (no training);
        the report's path under the workspace's ``stats/`` folder."""
        self.agree_plan(statistics_plan(self.config, self.spec, self.layout, self.run_id, bins))
        parties = self.directory.await_parties(wait_for_all=True)
        report = collect_stats(self.coordinator, parties, self.contract, self.run_id, self.config.round_timeout_s, bins)
        path = self.workspace.stats / f"{self.contract.name}-v{self.contract.version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_json(path, report.model_dump(mode="json"))
        return path

    def close(self) -> None:
        """Release the endpoint (parties are offline for this coordinator from now on), finish the queued writes,
        then release the run's lease."""
        try:
            self.directory.close()
        finally:
            try:
                self.checkpoints.close()
            except Exception:  # a failed write was raised at its round already, or the run failed before
                log.exception("run %s: a queued checkpoint or summary write failed", self.run_id)
            finally:
                self.lease.release()

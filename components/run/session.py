"""One federation run as a sequence of steps the flow calls: validate, initialise, rounds, value, promote.

The session keeps the heavy objects (sockets, tensors, trackers) so that flow tasks pass only
references (the run id, round numbers, paths). Every finished round is checkpointed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.adapters.checkpoints import RunCheckpoints, load_arrays, save_arrays, save_json
from components.adapters.contracts import Contract, load_contract, read_dataset, split_features
from components.adapters.store import FederationStore, anonymous_name
from components.adapters.tracking import ModelRegistry, RunTracker
from components.adapters.transport import read_keypair
from components.adapters.versioning import MetadataRepo
from components.adapters.workspace import Workspace
from components.core.config import FederationConfig
from components.core.errors import ConfigError, ContractError, PartyUnavailable, QuorumNotReached
from components.core.gates import promotion_gate
from components.core.kernels import weighted_mean
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import (
    EvaluateRequest,
    EvaluationReply,
    ProfileReply,
    TrainRequest,
    UpdateReply,
    ValidateRequest,
    ValidationReply,
    parse_body,
)
from components.core.reputation import ReputationInputs, update_reputation
from components.core.rewards import allocate_rewards, model_reward_tiers
from components.core.secagg.vectors import vector_length
from components.core.selection import select_parties
from components.core.strategies import ClientUpdate, Strategy, build_strategy
from components.core.strategies.dp import DifferentialPrivacy
from components.core.update_checks import check_update
from components.core.valuation import methods_under_secure_aggregation, value_round
from components.ml.model import (
    ProbabilityModel,
    build_model,
    get_params,
    parameter_layout,
    set_params,
)
from components.ml.training import evaluate
from components.run.coordinator import Coordinator, Exchange
from components.run.secure_round import SecureRound, check_secure_reply
from components.run.summary import ModelReward, Promotion, RoundMetrics, RoundRow, RunSummary

log = logging.getLogger(__name__)


def new_run_id(federation: str) -> str:
    return f"{federation}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{np.random.default_rng().integers(16**4):04x}"


class FederationSession:
    """State and steps of one run; owns the coordinator socket for the run's lifetime."""

    def __init__(self, config: FederationConfig, workspace: Workspace, run_id: str) -> None:
        self.config = config
        self.workspace = workspace.create()
        self.run_id = run_id
        self.contract: Contract = load_contract(config.contract.name, config.contract.version)
        self.spec = ModelSpec(
            n_features=self.contract.n_features,
            n_classes=self.contract.n_classes,
            hidden=config.model.hidden,
            seed=config.model.seed,
        )
        self.layout = parameter_layout(self.spec)
        self.strategy = self._build_strategy()
        self.checkpoints = RunCheckpoints(workspace.checkpoints, run_id)
        save_json(self.checkpoints.config, config.model_dump(mode="json"))
        self.store = FederationStore(workspace.store_url)
        self.tracker = RunTracker(workspace.tracking_uri, experiment=config.name)
        self.registry = ModelRegistry(workspace.tracking_uri)
        self.holdout = self._load_holdout()
        self.summary = self._load_or_start_summary()
        self.party_names = [p.name for p in config.parties]
        self._round_drafts: dict[int, dict[str, Any]] = {}
        self.left: set[str] = set()  # parties that left during this run: only anonymous statistics remain
        for party in config.parties:
            self.store.upsert_party(party.name, party.public_key)
        self.coordinator = Coordinator(
            bind=config.coordinator.bind,
            keys=read_keypair(config.coordinator.secret_key_file),
            party_keys=config.party_by_key(),
            max_message_bytes=config.max_message_mb << 20,
            liveness_timeout_s=config.heartbeat_timeout_s,
            on_event=self._on_party_event,
        )
        self.coordinator.rejected.update(self.summary.rejected_messages)  # counts survive a resume
        self.coordinator.late.update(self.summary.late_messages)
        self.secure = config.secure_aggregation.enabled
        update_layout = {"masked": ((vector_length(self.layout),), "uint64")} if self.secure else self.layout
        self.coordinator.boundary_checks[Kind.UPDATE] = lambda _, tensors: check_update(
            tensors, update_layout, None, None
        )
        for kind in (Kind.SECAGG_KEYS, Kind.SECAGG_SHARES, Kind.SECAGG_REVEAL):
            self.coordinator.boundary_checks[kind] = check_secure_reply

    # ---- setup ----
    def _build_strategy(self) -> Strategy:
        options = dict(self.config.strategy.options)
        if self.config.strategy.name == "dp":  # fitted input statistics are not trained: never add noise to them
            options.setdefault("frozen", [n for n in self.layout if n.startswith("standardize.")])
        try:
            return build_strategy(self.config.strategy.name, **options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"strategy {self.config.strategy.name!r}: {error}") from None

    def privacy_budget(self, parties: list[str]) -> tuple[float | None, float]:
        """The tightest epsilon budget and delta among ``parties`` (None: nobody declared a budget)."""
        budgets = [
            info.hello.privacy_budget
            for p in parties
            if (info := self.coordinator.parties.get(p)) and info.hello and info.hello.privacy_budget
        ]
        if not budgets:
            return None, self.config.privacy_delta
        return min(b.epsilon for b in budgets), min(b.delta for b in budgets)

    def _load_holdout(self) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
        if self.config.holdout is None:
            return None
        frame = read_dataset(self.config.holdout, self.contract)
        features, labels = split_features(frame, self.contract)
        return features, labels, frame[self.contract.features]

    def _load_or_start_summary(self) -> RunSummary:
        path = self.workspace.summary_path(self.run_id)
        if path.exists():
            return RunSummary.read(path)
        return RunSummary(
            run_id=self.run_id,
            status="running",
            started_at=datetime.now(UTC).isoformat(),
            config=self.config.model_dump(mode="json"),
        )

    def _on_party_event(self, party: str, event: str, detail: dict[str, Any]) -> None:
        if event in ("hello", "register"):
            key = next(k for k, name in self.config.party_by_key().items() if name == party)
            self.store.upsert_party(party, key, manifest=detail["manifest"], resources=detail["resources"])
            self.store.mark_party(party, "online")
        elif event == "heartbeat":
            self.store.mark_party(party, "online", detail.get("resources"))
        elif event == "bye":
            self.store.mark_party(party, "offline")
        elif event == "leave":
            self.left.add(party)
            self.store.delete_party(party)
            self.party_names = [p for p in self.party_names if p != party]

    def start_tracking(self) -> str:
        """Open (or reopen, on resume) the run's one MLflow run and record the run in the store."""
        if self.summary.mlflow_run_id:
            self.tracker.resume(self.summary.mlflow_run_id)
        else:
            self.summary.mlflow_run_id = self.tracker.start(self.run_id, tags={"consortia.run_id": self.run_id})
            self.tracker.log_params(
                {
                    "strategy": self.config.strategy.name,
                    "rounds": self.config.rounds,
                    "parties": len(self.config.parties),
                    "contract": self.contract.ref,
                    "model.hidden": self.config.model.hidden,
                    "training": self.config.training.model_dump(),
                    "valuation": self.config.valuation.method,
                }
            )
        self.store.start_run(self.run_id, self.config.name, self.summary.config)
        self._save_summary()
        return self.summary.mlflow_run_id

    def await_parties(self, wait_for_all: bool = False) -> list[str]:
        """Connected parties: waits for every listed party (at the start) or for a quorum (later steps)."""
        ready = self.coordinator.wait_for_parties(
            self.party_names, self.config.min_parties, self.config.join_timeout_s, wait_for_all
        )
        if not ready:
            raise PartyUnavailable(
                f"fewer than {self.config.min_parties} parties connected within {self.config.join_timeout_s:.0f}s "
                f"(listening on {self.coordinator.endpoint})"
            )
        return ready

    # ---- validate ----
    def validate(self) -> dict[str, dict[str, Any]]:
        """Every connected party checks its own data against the contract; only summaries come back."""
        parties = self.await_parties(wait_for_all=True)
        body = ValidateRequest(contract=self.contract.name, version=self.contract.version).model_dump()
        exchange = self.coordinator.exchange(
            parties, Kind.VALIDATE, self.run_id, 0, body, timeout_s=self.config.round_timeout_s
        )
        self._raise_if_unanswered(exchange, "validation")
        results: dict[str, dict[str, Any]] = {}
        failures = []
        metadata = MetadataRepo(self.workspace.metadata_repo, self.workspace.metadata_remote)
        for party, reply in sorted(exchange.replies.items()):
            answer = parse_body(ValidationReply, reply.envelope.body)
            results[party] = answer.summary.model_dump(mode="json")
            self.store.record_validation(self.run_id, party, answer.summary.success, results[party], answer.manifest)
            path = save_json(self.workspace.metadata_repo / "manifests" / f"{party}.json", answer.manifest)
            self.summary.manifests[party] = metadata.track(path)
            if not answer.summary.success:
                failures.append(f"{party}: {', '.join(answer.summary.failed)}")
        contract_copy = save_json(
            self.workspace.metadata_repo / "contracts" / f"{self.contract.name}_v{self.contract.version}.json",
            self.contract.model_dump(mode="json"),
        )
        metadata.track(contract_copy)
        metadata.push()
        self.summary.validation = results
        self.tracker.set_tags({f"manifest.{p}": h for p, h in self.summary.manifests.items()})
        self._save_summary()
        if failures:
            raise ContractError("data contract violated at " + "; ".join(failures))
        return results

    # ---- initial model ----
    def initialise(self) -> int:
        """Create round 0's model (input scaling fitted from federated sums), or find the resume point."""
        last = self.checkpoints.last_round()
        if last >= 0:
            self.strategy.load_state(self._strategy_state(last))
            return last + 1
        parties = self.await_parties()
        exchange = self.coordinator.exchange(
            parties,
            Kind.PROFILE,
            self.run_id,
            0,
            {},
            timeout_s=self.config.round_timeout_s,
            check=self._check_profile,
        )
        self._raise_if_unanswered(exchange, "profiling")
        count = sum(parse_body(ProfileReply, r.envelope.body).count for r in exchange.replies.values())
        total = sum(r.tensors["sum"] for r in exchange.replies.values())
        total_sq = sum(r.tensors["sum_sq"] for r in exchange.replies.values())
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        model = build_model(self.spec)
        params = get_params(model)
        params["standardize.mean"] = mean.astype(np.float32)
        params["standardize.scale"] = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        self._checkpoint(0, params)
        return 1

    def _check_profile(self, envelope: Envelope, tensors: Params) -> None:
        shape = (self.spec.n_features,)
        check_update(tensors, {"sum": (shape, "float64"), "sum_sq": (shape, "float64")}, None, None)

    # ---- rounds ----
    def train_round(self, round_number: int) -> Path:
        """Send the global model out, collect checked updates, aggregate; returns the new model's path."""
        started = time.perf_counter()
        current = load_arrays(self.checkpoints.global_params(round_number - 1))
        reputation = {row["name"]: row["reputation"] for row in self.store.party_rows()}
        parties = select_parties(
            self.await_parties(),
            self.config.fraction,
            self.config.min_parties,
            reputation,
            self.config.training.seed,
            round_number,
        )
        overrides = getattr(self.strategy, "training_overrides", dict)()
        training = self.config.training.model_copy(update=overrides)
        epsilon_after, delta = self._check_privacy(parties)
        body = TrainRequest(model=self.spec, training=training, epsilon_after_round=epsilon_after, delta=delta)
        body = body.model_dump()
        if self.secure:
            draft = self._secure_round(round_number, parties, body, current)
        else:
            draft = self._plain_round(round_number, parties, body, current)
        draft["seconds"] = time.perf_counter() - started
        draft["epsilon"] = self.strategy.epsilon(delta) if isinstance(self.strategy, DifferentialPrivacy) else None
        self._round_drafts[round_number] = draft
        return self.checkpoints.global_params(round_number)

    def _plain_round(self, round_number: int, parties: list[str], body: dict[str, Any], current: Params) -> dict:
        """Every party's checked update reaches the strategy; updates are kept for valuation."""
        exchange = self.coordinator.exchange(
            parties,
            Kind.TRAIN,
            self.run_id,
            round_number,
            body,
            tensors=current,
            timeout_s=self.config.round_timeout_s,
            check=lambda _, tensors: check_update(tensors, self.layout, self.config.max_update_norm, current),
        )
        updates = []
        for party, reply in sorted(exchange.replies.items()):
            answer = parse_body(UpdateReply, reply.envelope.body)
            updates.append(ClientUpdate(party, reply.tensors, answer.num_examples, answer.metrics))
        problems = {**exchange.errors, **{p: "no reply before deadline" for p in exchange.missing}}
        if len(updates) < self.config.min_parties:
            raise QuorumNotReached(
                f"round {round_number}: {len(updates)} usable updates, need {self.config.min_parties} ({problems})"
            )
        try:
            aggregated = self.strategy.aggregate(round_number, current, updates)
        except ValueError as error:  # e.g. Multi-Krum or mixing given too few updates for their f
            raise QuorumNotReached(
                f"round {round_number}: strategy {self.config.strategy.name!r} cannot aggregate "
                f"{len(updates)} updates: {error}"
            ) from None
        save_arrays(self.checkpoints.global_params(round_number), aggregated)
        self._save_updates(round_number, updates)
        return {
            "round": round_number,
            "participants": [u.party for u in updates],
            "party_metrics": {u.party: dict(u.metrics) for u in updates},
            "rejected": problems,
            "bytes_up": exchange.bytes_up,
            "bytes_down": exchange.bytes_down,
        }

    def _secure_round(self, round_number: int, parties: list[str], body: dict[str, Any], current: Params) -> dict:
        """Only the sum of the masked updates is ever known here; the strategy sees it as one update."""
        threshold = max(2, math.ceil(self.config.secure_aggregation.threshold_fraction * len(parties)))
        secure = SecureRound(
            self.coordinator, self.run_id, round_number, self.layout, threshold, self.config.round_timeout_s
        )
        result = secure.run(parties, body, current)
        if len(result.participants) < self.config.min_parties:
            raise QuorumNotReached(
                f"round {round_number}: {len(result.participants)} masked updates, need {self.config.min_parties}"
            )
        summed = ClientUpdate("secure-sum", result.params, result.total_examples)
        save_arrays(
            self.checkpoints.global_params(round_number), self.strategy.aggregate(round_number, current, [summed])
        )
        return {
            "round": round_number,
            "participants": result.participants,
            "party_metrics": {},
            "rejected": result.problems,
            "bytes_up": result.bytes_up,
            "bytes_down": result.bytes_down,
        }

    def _check_privacy(self, parties: list[str]) -> tuple[float | None, float]:
        """Epsilon after the coming round (None without DP); BudgetExceeded before a round that would overspend."""
        budget, delta = self.privacy_budget(parties)
        if not isinstance(self.strategy, DifferentialPrivacy):
            return None, delta
        if budget is not None:
            self.strategy.check_budget(budget, delta)
        dp = self.strategy
        after = dp.accountant.epsilon_after(dp.accounted_noise_multiplier, dp.accounted_sample_rate, 1, delta)
        return after, delta

    def evaluate_round(self, round_number: int) -> RoundRow:
        """Evaluate the round's new global model, then record and checkpoint the finished round."""
        started = time.perf_counter()
        params = load_arrays(self.checkpoints.global_params(round_number))
        metrics = self.evaluate_global(params, round_number)
        draft = self._round_drafts.pop(round_number)
        draft["seconds"] += time.perf_counter() - started
        row = RoundRow(metrics=RoundMetrics(**metrics), **draft)
        self.summary.rounds = [r for r in self.summary.rounds if r.round != round_number] + [row]
        self._checkpoint(round_number, params)
        self.tracker.log_metrics(
            {
                **metrics,
                "bytes_up": row.bytes_up,
                "bytes_down": row.bytes_down,
                "round_seconds": row.seconds,
                "participants": len(row.participants),
            },
            step=round_number,
        )
        self._save_summary()  # first: it anonymises parties that left
        self.store.record_round(self.run_id, row.model_dump())
        log.info(
            "run %s round %d: %s, accuracy %.4f, loss %.4f, %.2f s",
            self.run_id,
            round_number,
            ", ".join(sorted(row.participants)),
            row.metrics.accuracy,
            row.metrics.loss,
            row.seconds,
        )
        return row

    @property
    def final_round(self) -> int:
        """The last finished round (the configured count, unless the run stopped early)."""
        return max((row.round for row in self.summary.rounds), default=0)

    def stop_early(self, reason: str) -> None:
        """Train no more rounds; the remaining steps use the last finished round."""
        log.warning("run %s stops training after round %d: %s", self.run_id, self.final_round, reason)
        self.summary.stopped_early = reason
        self.tracker.set_tags({"stopped_early": reason[:500]})
        self._save_summary()

    def evaluate_global(self, params: Params, round_number: int) -> dict[str, float]:
        """Held-out metrics at the coordinator, or the example-weighted mean of the parties' own metrics."""
        if self.holdout is not None:
            features, labels, _ = self.holdout
            return evaluate(self.spec, params, features, labels)
        body = EvaluateRequest(model=self.spec).model_dump()
        exchange = self.coordinator.exchange(
            self.await_parties(),
            Kind.EVALUATE,
            self.run_id,
            round_number,
            body,
            tensors=params,
            timeout_s=self.config.round_timeout_s,
        )
        self._raise_if_unanswered(exchange, "evaluation")
        answers = [parse_body(EvaluationReply, r.envelope.body) for r in exchange.replies.values()]
        total = sum(a.num_examples for a in answers)
        return {k: sum(a.metrics[k] * a.num_examples for a in answers) / total for k in ("accuracy", "roc_auc", "loss")}

    # ---- valuation ----
    def value_contributions(self) -> dict[str, float]:
        """Value each party's updates round by round (from stored updates) and sum over rounds."""
        method = self.config.valuation.method
        if self.secure:
            self.summary.valuation_method = (
                "none: with secure aggregation the coordinator holds only each round's sum, and every valuation "
                f"method needs per-party updates (available under secure aggregation: "
                f"{methods_under_secure_aggregation() or 'none'})"
            )
            self._save_summary()
            return {}
        totals = dict.fromkeys(self.party_names, 0.0)
        for row in sorted(self.summary.rounds, key=lambda r: r.round):
            updates = self._load_updates(row.round)
            start = load_arrays(self.checkpoints.global_params(row.round - 1))
            result = value_round(method, updates, start, self._utility, self.config.valuation.options)
            self.summary.round_contributions[row.round] = self._public(result.values)
            self.store.record_contributions(self.run_id, row.round, self._public(result.values), method)
            for party, value in result.values.items():
                totals[party] = totals.get(party, 0.0) + value
        totals = self._public(totals)
        self.summary.contributions = totals
        self.summary.valuation_method = method
        self.store.record_contributions(self.run_id, 0, totals, method)
        self.tracker.log_metrics({f"contribution.{p}": v for p, v in totals.items()}, step=self.config.rounds)
        self._save_summary()
        return totals

    def allocate_rewards(self) -> dict[str, float]:
        """Split the reward pool by contribution, and give each party a model that follows its contribution."""
        cfg = self.config.rewards
        refused = {
            party
            for row in self.summary.rounds
            for party, reason in row.rejected.items()
            if not reason.startswith("no ") and party in self.party_names
        }
        contributions = {p: v for p, v in self.summary.contributions.items() if p in self.party_names}
        if not contributions:  # no valuation (e.g. secure aggregation): split by participation alone
            contributions = dict.fromkeys(self.party_names, 0.0)
        rewards = allocate_rewards(cfg.pool, contributions, refused, cfg.participation_floor)
        self.summary.rewards = rewards
        self.summary.model_rewards = self._model_rewards(model_reward_tiers(contributions, refused))
        self.store.record_contributions(
            self.run_id, 0, self._public(self.summary.contributions), self.summary.valuation_method[:32], rewards
        )
        self.tracker.log_metrics({f"reward.{p}": v for p, v in rewards.items()}, step=self.final_round)
        self._save_summary()
        return rewards

    def _model_rewards(self, tiers: dict[str, list[str]]) -> dict[str, ModelReward]:
        """Aggregate each party's reward model from its tier's last-round updates and evaluate it."""
        if self.secure or not self.summary.rounds:
            return {party: ModelReward(sources=sources) for party, sources in tiers.items()}
        last = self.final_round
        updates = {u.party: u for u in self._load_updates(last)}
        rewards = {}
        for party, sources in tiers.items():
            chosen = [updates[p] for p in sources if p in updates]
            if not chosen:
                rewards[party] = ModelReward(sources=sources)
                continue
            params = weighted_mean([u.params for u in chosen], [u.num_examples for u in chosen])
            save_arrays(self.checkpoints.folder / "rewards" / f"{party}.npz", params)
            rewards[party] = ModelReward(sources=sources, accuracy=self._utility(params))
        return rewards

    def update_reputation(self) -> dict[str, float]:
        """Fold this run's liveness, rejected messages and contribution into each party's reputation."""
        positive = {p: max(v, 0.0) for p, v in self.summary.contributions.items()}
        total = sum(positive.values())
        for party in self.party_names:
            answered = sum(party in row.participants for row in self.summary.rounds)
            inputs = ReputationInputs(
                rounds_answered=answered,
                rounds_missed=len(self.summary.rounds) - answered,
                rejected_messages=self.coordinator.rejected[party],
                contribution_share=positive.get(party, 0.0) / total if total > 0 else 0.0,
                parties=len(self.party_names),
            )
            new = update_reputation(self.store.reputation_of(party), inputs)
            self.store.record_reputation(self.run_id, party, new, inputs.model_dump())
            self.summary.reputation[party] = new
        self.tracker.log_metrics(
            {f"reputation.{p}": v for p, v in self.summary.reputation.items()}, step=self.config.rounds
        )
        self._save_summary()
        return self.summary.reputation

    def _utility(self, params: Params) -> float:
        """Utility of a coalition's model: the configured held-out metric, with loss negated (higher is better)."""
        metric = self.config.valuation.metric
        value = self.evaluate_global(params, 0)[metric]
        return -value if metric == "loss" else value

    # ---- promotion ----
    def promote(self) -> Promotion:
        """Log and register the final model; move the alias only if it beats the current champion."""
        cfg = self.config.promotion
        final = load_arrays(self.checkpoints.global_params(self.final_round))
        metrics = self.evaluate_global(final, self.final_round)
        self.summary.final_metrics = RoundMetrics(**metrics)
        model = build_model(self.spec)
        set_params(model, final)
        example = (
            self.holdout[2].head(5)
            if self.holdout is not None
            else pd.DataFrame(np.zeros((1, self.spec.n_features)), columns=self.contract.features)
        )
        model_uri = self.tracker.log_model(ProbabilityModel(model).eval(), example.astype("float32"))
        candidate = metrics[cfg.metric]
        champion = self.registry.version_by_alias(cfg.model_name, cfg.alias)
        champion_value = float(champion.tags[f"metric.{cfg.metric}"]) if champion else None
        decision = promotion_gate(cfg.metric, candidate, champion_value, cfg.higher_is_better, cfg.min_improvement)
        version = self.registry.register(
            model_uri,
            cfg.model_name,
            tags={
                f"metric.{cfg.metric}": f"{candidate:.6f}",
                "consortia.run_id": self.run_id,
                **{f"manifest.{p}": h for p, h in self.summary.manifests.items()},
            },
        )
        if decision.promote:
            self.registry.set_alias(cfg.model_name, cfg.alias, version)
        promotion = Promotion(
            decision="promoted" if decision.promote else "kept",
            reason=decision.reason,
            model_name=cfg.model_name,
            version=version if decision.promote else (champion.version if champion else None),
            alias=cfg.alias,
            metric=cfg.metric,
            candidate_value=candidate,
            champion_value=champion_value,
        )
        self.summary.promotion = promotion
        self.tracker.set_tags(
            {
                "promotion.decision": promotion.decision,
                "promotion.reason": decision.reason,
                "model.version": str(version),
            }
        )
        self._save_summary()
        return promotion

    def finish(self, status: str = "completed") -> Path:
        """Write the summary everywhere it belongs, version the final model, release the parties."""
        self.summary.status = status
        self.summary.finished_at = datetime.now(UTC).isoformat()
        log.info("run %s %s after %d rounds", self.run_id, status, len(self.summary.rounds))
        self.summary.rejected_messages = dict(self.coordinator.rejected)
        self.summary.late_messages = dict(self.coordinator.late)
        path = self._save_summary()
        if status == "completed":
            metadata = MetadataRepo(self.workspace.metadata_repo, self.workspace.metadata_remote)
            model_copy = save_arrays(
                self.workspace.metadata_repo / "models" / f"{self.run_id}.npz",
                load_arrays(self.checkpoints.global_params(self.final_round)),
            )
            metadata.track(model_copy)
            metadata.push()
        self.tracker.log_json(self.summary.model_dump(mode="json"), "summary.json")
        self.tracker.finish("FINISHED" if status == "completed" else "FAILED")
        self.store.finish_run(self.run_id, status, self.summary.mlflow_run_id, str(path))
        for party in self.left:  # again at the end: rows written while the party was leaving
            self.store.delete_party(party)
        self.coordinator.broadcast(Kind.SHUTDOWN, self.run_id)
        return path

    def close(self) -> None:
        """Release the socket; parties are offline for this coordinator from now on."""
        self.coordinator.close()
        for party in self.party_names:
            self.store.mark_party(party, "offline")

    # ---- helpers ----
    def _raise_if_unanswered(self, exchange: Exchange, step: str) -> None:
        if exchange.missing or exchange.errors:
            problems = {
                **exchange.errors,
                **{p: "no reply before deadline" for p in exchange.missing},
            }
            if len(exchange.replies) < self.config.min_parties:
                raise PartyUnavailable(f"{step}: parties did not answer: {problems}")
            log.warning("%s: continuing without %s", step, problems)

    def _checkpoint(self, round_number: int, params: Params) -> None:
        save_arrays(self.checkpoints.global_params(round_number), params)
        save_arrays(self.checkpoints.strategy_state(round_number), self.strategy.state())
        save_json(
            self.checkpoints.state,
            {"last_round": round_number, "mlflow_run_id": self.summary.mlflow_run_id},
        )

    def _strategy_state(self, round_number: int) -> Params:
        path = self.checkpoints.strategy_state(round_number)
        return load_arrays(path) if path.exists() else {}

    def _save_updates(self, round_number: int, updates: list[ClientUpdate]) -> None:
        for update in updates:
            save_arrays(self.checkpoints.update(round_number, update.party), update.params)
        save_json(
            self.checkpoints.updates_meta(round_number),
            {u.party: {"num_examples": u.num_examples, "metrics": u.metrics} for u in updates},
        )

    def _load_updates(self, round_number: int) -> list[ClientUpdate]:
        meta = json.loads(self.checkpoints.updates_meta(round_number).read_text())
        return [
            ClientUpdate(
                party=party,
                params=load_arrays(self.checkpoints.update(round_number, party)),
                num_examples=info["num_examples"],
                metrics=info["metrics"],
            )
            for party, info in sorted(meta.items())
        ]

    def _public(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` keyed by party, with parties that left renamed to their anonymous names."""
        return {anonymous_name(p) if p in self.left else p: v for p, v in values.items()}

    def _save_summary(self) -> Path:
        if self.left:  # forget who left: drop their metadata, keep anonymous statistics
            summary = self.summary
            for party in self.left:
                summary.manifests.pop(party, None)
                summary.validation.pop(party, None)
            for row in summary.rounds:
                row.participants = [anonymous_name(p) if p in self.left else p for p in row.participants]
                row.party_metrics = self._public(row.party_metrics)
                row.rejected = self._public(row.rejected)
            summary.contributions = self._public(summary.contributions)
            summary.round_contributions = {r: self._public(v) for r, v in summary.round_contributions.items()}
        return self.summary.write(self.workspace.summary_path(self.run_id))

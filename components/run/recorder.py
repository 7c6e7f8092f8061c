"""The recorder: the one writer of a run's summary, federation-store rows, tracking run and metadata versions.

Every other part returns typed records; the recorder puts them everywhere they belong, and forgets
parties that left (their metadata is dropped, their statistics kept under an anonymous name). With a
``WriteBehind`` (the run's checkpoint writer), the summary file and the store's round rows are written on its
thread, in order with the round's checkpoints, so a round's writes do not delay the next round's requests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.adapters.checkpoints import save_arrays, save_json, write_text_atomically
from components.adapters.store import anonymous_name
from components.adapters.workspace import Workspace
from components.adapters.write_behind import WriteBehind
from components.core.config import FederationConfig
from components.core.contract import Contract
from components.core.fairness import FederatedEvaluation
from components.core.glm.summary import GlmSummary
from components.core.params import Params
from components.core.ports import MetadataPort, ServedModel, StorePort, TrackerPort
from components.core.protocol.plan import PlanDecision
from components.run.lineage import CARD_JSON, CARD_MARKDOWN, ModelCard
from components.run.records import Contributions, ReputationChange, Rewards, ValidationResult
from components.run.summary import Promotion, RoundMetrics, RoundRow, RunSummary

log = logging.getLogger(__name__)


class RunRecorder:
    """Writes one run's outcome to the summary JSON, the federation store, the tracker and DVC."""

    def __init__(
        self,
        run_id: str,
        config: FederationConfig,
        workspace: Workspace,
        tracker: TrackerPort,
        store: StorePort,
        metadata: MetadataPort,
        writer: WriteBehind | None = None,
    ) -> None:
        self.run_id = run_id
        self.writer = writer
        self.config = config
        self.workspace = workspace
        self.tracker = tracker
        self.store = store
        self.metadata = metadata
        self.left: set[str] = set()  # parties that left during this run: only anonymous statistics remain
        path = workspace.summary_path(run_id)
        self.summary = RunSummary.read(path) if path.exists() else self._new_summary()

    def _new_summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            status="running",
            started_at=datetime.now(UTC).isoformat(),
            config=self.config.model_dump(mode="json"),
        )

    # ---- parties ----
    def admit(self, party: str, public_key: str) -> None:
        self.store.upsert_party(party, public_key)

    def party_seen(self, party: str, public_key: str, profile: Mapping[str, Any]) -> None:
        """A party said hello or registered: its manifest and resources, and that it is online."""
        self.store.upsert_party(party, public_key, manifest=profile["manifest"], resources=profile["resources"])
        self.store.mark_party(party, "online")

    def party_status(self, party: str, status: str, resources: dict[str, Any] | None = None) -> None:
        self.store.mark_party(party, status, resources)

    def forget(self, party: str, public_key: str) -> None:
        """A party left: refuse its key from now on (in later runs too), delete its rows now, and keep only
        anonymous statistics in what is written later."""
        self.left.add(party)
        self.store.record_departure(public_key)
        self.store.delete_party(party)

    def public(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` keyed by party, with parties that left renamed to their anonymous names."""
        left = frozenset(self.left)  # parties leave on another thread
        return {anonymous_name(p) if p in left else p: v for p, v in values.items()}

    # ---- steps ----
    def start(self, contract: Contract) -> str:
        """Open (or reopen, on resume) the run's one tracking run and record the run in the store."""
        if self.summary.mlflow_run_id:
            self.tracker.resume(self.summary.mlflow_run_id)
            logged = self.tracker.logged_steps("round_seconds")  # metrics are queued: a crash can lose the last
            for row in self.summary.rounds:
                if row.round not in logged:
                    self.tracker.log_metrics(round_metrics(row), step=row.round)
        else:
            self.summary.mlflow_run_id = self.tracker.start(self.run_id, tags={"consortia.run_id": self.run_id})
            self.tracker.log_params(
                {
                    "strategy": self.config.strategy.name,
                    "rounds": self.config.rounds,
                    "parties": len(self.config.parties),
                    "contract": contract.ref,
                    "model.hidden": self.config.model.hidden,
                    "training": self.config.training.model_dump(),
                    "valuation": self.config.valuation.method,
                }
            )
        self.store.start_run(self.run_id, self.config.name, self.summary.config)
        self.save()
        return self.summary.mlflow_run_id

    def plan_decisions(self, decisions: Mapping[str, PlanDecision]) -> None:
        """Each party's decision on the run plan, in the summary and on the tracking run."""
        self.summary.plan_decisions = {party: d.model_dump() for party, d in sorted(decisions.items())}
        self.tracker.set_tags({f"plan.{party}": d.verdict for party, d in decisions.items()})
        self.save()

    def validation(self, result: ValidationResult, contract: Contract) -> None:
        """Summaries into the store and the summary; manifests and the contract versioned with DVC."""
        for party, summary in sorted(result.summaries.items()):
            as_json = summary.model_dump(mode="json")
            self.store.record_validation(self.run_id, party, summary.success, as_json, result.manifests[party])
            self.summary.validation[party] = as_json
            # the hash shown everywhere is the owner's own: the sha256 of its data file
            self.summary.manifests[party] = str(result.manifests[party].get("content_hash", ""))
            self.summary.claimed_rows[party] = int(result.manifests[party].get("rows", summary.row_count))
        # the run's manifests in one file, versioned with the contract in one DVC call: a thousand parties cost
        # DVC two files, not a thousand stages
        manifests = save_json(
            self.workspace.metadata_repo / "manifests" / f"{self.run_id}.json", dict(sorted(result.manifests.items()))
        )
        contract_copy = save_json(
            self.workspace.metadata_repo / "contracts" / f"{contract.name}_v{contract.version}.json",
            contract.model_dump(mode="json"),
        )
        for path, md5 in self.metadata.track_all([manifests, contract_copy]).items():
            # the lineage of the run's model names these md5s
            self.summary.data_versions[path.relative_to(self.workspace.metadata_repo).as_posix()] = md5
        self.metadata.push()
        self.tracker.set_tags({f"manifest.{p}": h for p, h in self.summary.manifests.items()})
        self.save()

    def round(self, row: RoundRow) -> None:
        """A finished round: the summary first (it anonymises parties that left), then tracker and store."""
        self.summary.rounds = [r for r in self.summary.rounds if r.round != row.round] + [row]
        self.summary.rounds.sort(key=lambda r: r.round)
        self.save()
        self.tracker.log_metrics(round_metrics(row), step=row.round)
        if self.writer is not None:
            self.writer.submit(self.store.record_round, self.run_id, row.model_dump())
        else:
            self.store.record_round(self.run_id, row.model_dump())
        log.info(
            "run %s round %d: %s, %s, %.2f s",
            self.run_id,
            row.round,
            ", ".join(sorted(row.participants)),
            ", ".join(f"{name} {value:.4f}" for name, value in row.metrics.present().items()),
            row.seconds,
        )

    def stopped_early(self, reason: str) -> None:
        log.warning("run %s stops training after round %d: %s", self.run_id, self.final_round, reason)
        self.summary.stopped_early = reason
        self.tracker.set_tags({"stopped_early": reason[:500]})
        self.save()

    @property
    def final_round(self) -> int:
        """The last finished round (the configured count, unless the run stopped early)."""
        return max((row.round for row in self.summary.rounds), default=0)

    def contributions(self, result: Contributions) -> None:
        self.summary.valuation_method = result.method
        self.summary.round_contributions = {r: self.public(v) for r, v in result.per_round.items()}
        self.summary.contributions = self.public(result.totals)
        if result.report is not None:
            self.summary.valuation = result.report.model_copy(
                update={"errors": self.public(result.report.errors), "ranks": self.public(result.report.ranks)}
            )
        method = result.method[:32]
        for round_number, values in sorted(self.summary.round_contributions.items()):
            self.store.record_contributions(self.run_id, round_number, values, method)
        self.store.record_contributions(self.run_id, 0, self.summary.contributions, method)
        if result.totals:
            self.tracker.log_metrics(
                {f"contribution.{p}": v for p, v in self.summary.contributions.items()}, step=self.final_round
            )
        self.save()

    def rewards(self, result: Rewards) -> None:
        self.summary.rewards = result.shares
        self.summary.model_rewards = result.models
        self.store.record_contributions(
            self.run_id, 0, self.summary.contributions, self.summary.valuation_method[:32], result.shares
        )
        self.tracker.log_metrics({f"reward.{p}": v for p, v in result.shares.items()}, step=self.final_round)
        self.save()

    def reward_model(self, party: str, params: Params) -> Path:
        return save_arrays(self.workspace.checkpoints / self.run_id / "rewards" / f"{party}.npz", params)

    def reputation(self, changes: list[ReputationChange]) -> None:
        for change in changes:
            self.store.record_reputation(self.run_id, change.party, change.reputation, change.inputs)
            self.summary.reputation[change.party] = change.reputation
        self.tracker.log_metrics(
            {f"reputation.{p}": v for p, v in self.summary.reputation.items()}, step=self.final_round
        )
        self.save()

    def glm(self, summary: GlmSummary) -> None:
        """A GLM's fitted summary: in the run summary, as a JSON artifact, and its fit statistics as metrics."""
        self.summary.glm = summary
        self.save()
        self.tracker.log_json(summary.model_dump(mode="json"), "glm_summary.json")
        metrics = {"glm_deviance": summary.deviance, "glm_aic": summary.aic, "glm_iterations": summary.iterations}
        self.tracker.log_metrics(metrics, step=summary.iterations)

    def log_model(self, served: ServedModel, params: Params, example: Any) -> str:
        """Log the final model as the registry will serve it; returns the URI to register."""
        return self.tracker.log_model(served, params, example)

    def model_card(self, card: ModelCard) -> None:
        """The final model's card on the tracking run, as JSON and Markdown, before the version is registered."""
        self.tracker.log_json(card.model_dump(mode="json"), CARD_JSON)
        self.tracker.log_text(card.markdown(), CARD_MARKDOWN)

    def evaluation(self, evaluation: FederatedEvaluation) -> None:
        """The final model's federated evaluation: in the summary, as metrics (``party.NAME.METRIC``,
        ``fairness_gap.METRIC``) at the final round, and as ``evaluation.json``."""
        self.summary.evaluation = evaluation
        self.save()  # renames parties that left
        shown = self.summary.evaluation
        metrics = {f"party.{p}.{m}": v for p, party in shown.parties.items() for m, v in party.metrics.items()}
        metrics.update({f"fairness_gap.{m}": gap.gap for m, gap in shown.gaps.items()})
        if metrics:
            self.tracker.log_metrics(metrics, step=self.final_round)
        self.tracker.log_json(shown.model_dump(mode="json"), "evaluation.json")
        for metric, gap in shown.gaps.items():
            log.info(
                "run %s final model %s: weighted mean %.4f over %d parties, worst %s %.4f, fairness gap %.4f",
                self.run_id,
                metric,
                gap.weighted_mean,
                len(shown.parties),
                gap.worst_party,
                gap.worst_value,
                gap.gap,
            )

    def promotion(
        self, promotion: Promotion, final_metrics: RoundMetrics | None, registered_version: int | None
    ) -> None:
        """The promotion decision and every gate's reason: in the summary, the tracking run's tags and the log
        (``registered_version`` None: the model was logged, not registered)."""
        self.summary.final_metrics = final_metrics
        self.summary.promotion = promotion
        tags = promotion.tags()
        if registered_version is not None:
            tags["model.version"] = str(registered_version)
        self.tracker.set_tags(tags)
        for gate in promotion.gates:
            log.info("run %s promotion gate %s: %s", self.run_id, gate.name, gate.reason)
        log.info("run %s promotion: %s (%s)", self.run_id, promotion.decision, promotion.reason)
        self.save()

    def finish(
        self,
        status: str,
        final_params: Params | None,
        rejected: Mapping[str, int],
        late: Mapping[str, int],
        error: str | None = None,
    ) -> Path:
        """Write the summary everywhere it belongs and version the final model (completed runs only)."""
        self.summary.status = status
        self.summary.error = error
        self.summary.finished_at = datetime.now(UTC).isoformat()
        log.info("run %s %s after %d rounds", self.run_id, status, len(self.summary.rounds))
        self.summary.rejected_messages = dict(rejected)
        self.summary.late_messages = dict(late)
        path = self.save()
        if self.writer is not None:
            self.writer.flush()  # the summary and every round row are stored before the run is called finished
        if final_params is not None:
            model_copy = save_arrays(self.workspace.metadata_repo / "models" / f"{self.run_id}.npz", final_params)
            self.metadata.track(model_copy)
            self.metadata.push()
        self.tracker.log_json(self.summary.model_dump(mode="json"), "summary.json")
        self.tracker.finish("FINISHED" if status == "completed" else "FAILED")
        self.store.finish_run(self.run_id, status, self.summary.mlflow_run_id, str(path))
        for party in frozenset(self.left):  # again at the end: rows written while the party was leaving
            self.store.delete_party(party)
        return path

    def save(self) -> Path:
        """Write the summary file, first forgetting who left: their metadata goes, anonymous statistics stay."""
        summary = self.summary
        left = frozenset(self.left)
        if left:
            for party in left:
                summary.manifests.pop(party, None)
                summary.claimed_rows.pop(party, None)
                summary.data_versions.pop(f"manifests/{party}.json", None)
                summary.validation.pop(party, None)
                summary.plan_decisions.pop(party, None)
            for row in summary.rounds:
                row.participants = [anonymous_name(p) if p in left else p for p in row.participants]
                row.party_metrics = self.public(row.party_metrics)
                row.rejected = self.public(row.rejected)
            summary.contributions = self.public(summary.contributions)
            summary.round_contributions = {r: self.public(v) for r, v in summary.round_contributions.items()}
            summary.rewards = self.public(summary.rewards)
            summary.model_rewards = self.public(summary.model_rewards)
            if summary.valuation is not None:
                summary.valuation.errors = self.public(summary.valuation.errors)
                summary.valuation.ranks = self.public(summary.valuation.ranks)
            if summary.evaluation is not None:
                summary.evaluation.parties = self.public(summary.evaluation.parties)
                for gap in summary.evaluation.gaps.values():
                    gap.worst_party = anonymous_name(gap.worst_party) if gap.worst_party in left else gap.worst_party
        path = self.workspace.summary_path(self.run_id)
        if self.writer is None:
            return summary.write(path)
        self.writer.submit(_write_summary, path, _snapshot(summary))
        return path


def _snapshot(summary: RunSummary) -> RunSummary:
    """A copy the writer thread can serialise while this thread goes on changing ``summary``: every list and dict
    field copied one level deep. Recorded rows change later only when a party leaves (its name anonymised), which a
    queued write may then already show."""
    copied = {name: type(value)(value) for name, value in summary.__dict__.items() if isinstance(value, list | dict)}
    return summary.model_copy(update=copied)


def _write_summary(path: Path, summary: RunSummary) -> None:
    """Serialise on the writer thread: a run's summary grows with its rounds, so dumping it is not the round's work."""
    write_text_atomically(path, summary.model_dump_json(indent=2))


def round_metrics(row: RoundRow) -> dict[str, float]:
    """What the tracker records of a round, at step ``row.round``."""
    return {
        **row.metrics.present(),
        "bytes_up": row.bytes_up,
        "bytes_down": row.bytes_down,
        "round_seconds": row.seconds,
        "participants": len(row.participants),
    }

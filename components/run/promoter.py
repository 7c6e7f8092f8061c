"""The promoter: register the candidate, decide by the policy's gates, and move ``champion`` all-or-nothing.

Three calls, each usable alone (a sweep promotes its elected child with the same calls):

- ``propose(candidate)`` registers the candidate (once per run id, so a retried step finds its version) with
  the ``challenger`` alias and decides the gates (threshold, champion, fairness). A failed gate concludes at
  once (``kept``); passed gates promote at once, or wait as ``awaiting approval`` when the policy requires it.
- ``conclude(proposal, approval)`` answers a held proposal with a person's ``Approval`` (None: nobody
  answered). A champion that moved meanwhile is compared again.
- ``promote(...)`` is both in one call (no approval to wait for: a required one counts as not given).

A promotion moves three things together: the champion record in DVC (``champions/MODEL.json``), the
version's ``promotion.*`` tags and the alias. If any move fails, those already made are undone, in reverse,
and the error is raised: the registry, its tags and DVC never disagree about who the champion is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from components.adapters.checkpoints import write_text_atomically
from components.core.config import PromotionConfig
from components.core.fairness import FederatedEvaluation, fairness_gap
from components.core.gates import Approval, approval_gate, champion_gate, decision, promotion_gates
from components.core.ports import MetadataPort, RegisteredVersion, RegistryPort
from components.core.tasks import TaskKind
from components.run.summary import AWAITING_APPROVAL, Promotion

log = logging.getLogger(__name__)
RUN_TAG = "consortia.run_id"


class Candidate(BaseModel):
    """A model put forward for promotion: where it is logged, its metrics and what it was made from."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    manifests: dict[str, str] = Field(default_factory=dict)  # party -> data manifest hash
    evaluation: FederatedEvaluation | None = None  # per-party metrics: the fairness gate reads them
    tags: dict[str, str] = Field(default_factory=dict)  # further lineage tags for the registered version
    description: str = ""  # the version's description: its model card


class Promoter:
    """Registers every run's model with its lineage; the policy's gates (and a person) decide the alias."""

    def __init__(
        self,
        config: PromotionConfig,
        registry: RegistryPort,
        task: TaskKind,
        metadata: MetadataPort | None = None,
        records: Path | None = None,
    ) -> None:
        """``metadata`` and ``records`` (a folder inside its repository): where the champion record is versioned;
        without them a promotion moves the alias and tags only."""
        self.config = config.resolved(task)
        self.registry = registry
        self.metadata = metadata
        self.records = records

    @property
    def approval_required(self) -> bool:
        return self.config.approval == "required"

    # ---- the three calls ----
    def promote(
        self,
        model_uri: str,
        metrics: Mapping[str, float],
        run_id: str,
        manifests: Mapping[str, str],
        *,
        evaluation: FederatedEvaluation | None = None,
        tags: Mapping[str, str] | None = None,
        approval: Approval | None = None,
    ) -> tuple[Promotion, int]:
        """Propose and conclude in one call; the decision and the version registered for this run's model."""
        candidate = Candidate(
            run_id=run_id,
            model_uri=model_uri,
            metrics=dict(metrics),
            manifests=dict(manifests),
            evaluation=evaluation,
            tags=dict(tags or {}),
        )
        proposal = self.propose(candidate)
        promotion = self.conclude(proposal, approval) if proposal.awaiting_approval else proposal
        return promotion, int(proposal.version or 0)

    def propose(self, candidate: Candidate) -> Promotion:
        """Register ``candidate`` as the challenger and decide its gates: ``kept`` or ``promoted`` (done), or
        ``awaiting approval`` (conclude it with a person's answer)."""
        cfg = self.config
        metric = str(cfg.metric)
        value = candidate.metrics[metric]
        version = self._register(candidate)
        champion = self.registry.version_by_alias(cfg.model_name, cfg.alias)
        champion_value = _metric_of(champion, metric)
        gates = promotion_gates(cfg, value, champion_value, candidate.evaluation)
        gap = None
        if candidate.evaluation is not None and any(metric in p.metrics for p in candidate.evaluation.parties.values()):
            gap = fairness_gap(candidate.evaluation.parties, metric, cfg.higher_is_better).gap
        proposal = Promotion(
            decision="kept",
            reason=gates.reason,
            model_name=cfg.model_name,
            version=version,
            champion_version=champion.version if champion else None,
            alias=cfg.alias,
            metric=metric,
            candidate_value=value,
            champion_value=champion_value,
            challenger_alias=cfg.challenger_alias,
            gates=gates.gates,
            fairness_gap=gap,
        )
        if gates.promote and self.approval_required:
            held = proposal.model_copy(
                update={"decision": AWAITING_APPROVAL, "reason": f"{gates.reason}; held for approval"}
            )
            self.registry.set_version_tags(cfg.model_name, version, held.tags())
            log.warning("promotion of %s v%d is held for approval: %s", cfg.model_name, version, gates.reason)
            return held
        return self._apply(proposal.model_copy(update={"decision": "promoted" if gates.promote else "kept"}))

    def conclude(self, proposal: Promotion, approval: Approval | None) -> Promotion:
        """The final decision on a held proposal given a person's answer (None: nobody answered in time)."""
        if not proposal.awaiting_approval:
            return proposal
        cfg = self.config
        gates = [gate for gate in proposal.gates if gate.name != "approval"]
        champion = self.registry.version_by_alias(cfg.model_name, cfg.alias)
        now = champion.version if champion else None
        champion_value = proposal.champion_value
        if now != proposal.champion_version:  # another run took the alias while this one waited
            champion_value = _metric_of(champion, str(proposal.metric))
            moved = champion_gate(
                str(proposal.metric),
                float(proposal.candidate_value or 0.0),
                champion_value,
                bool(cfg.higher_is_better),
                cfg.min_improvement,
            )
            gates = [moved if gate.name == "champion" else gate for gate in gates]
        gates.append(approval_gate(approval, cfg.approval_timeout_s))
        decided = decision(gates)
        final = proposal.model_copy(
            update={
                "decision": "promoted" if decided.promote else "kept",
                "reason": decided.reason,
                "gates": decided.gates,
                "approval": approval,
                "champion_version": now,
                "champion_value": champion_value,
            }
        )
        return self._apply(final)

    # ---- registering ----
    def _register(self, candidate: Candidate) -> int:
        """The candidate's version: the one registered for its run id already, else a new one; it gets the
        challenger alias."""
        cfg = self.config
        metric = str(cfg.metric)
        earlier = [v for v in self.registry.versions(cfg.model_name) if v.tags.get(RUN_TAG) == candidate.run_id]
        if earlier:
            version = earlier[-1].version
        else:
            tags = {
                f"metric.{metric}": repr(float(candidate.metrics[metric])),  # exact: the next run compares it
                RUN_TAG: candidate.run_id,
                **{f"manifest.{p}": h for p, h in candidate.manifests.items()},
                **candidate.tags,
            }
            if candidate.evaluation is not None and (gap := candidate.evaluation.gap(metric)) is not None:
                tags[f"fairness_gap.{metric}"] = repr(gap)
            version = self.registry.register(
                candidate.model_uri, cfg.model_name, tags=tags, description=candidate.description
            )
        self.registry.set_alias(cfg.model_name, cfg.challenger_alias, version)
        return version

    # ---- moving, all or nothing ----
    def _apply(self, promotion: Promotion) -> Promotion:
        """Write the decision: its tags on the version and, when promoted, the champion record and the alias;
        every move made is undone if a later one fails."""
        cfg = self.config
        version = int(promotion.version or 0)
        tags = promotion.tags()
        level = logging.INFO if promotion.decision == "promoted" else logging.WARNING
        with contextlib.ExitStack() as undo:
            if promotion.decision == "promoted":
                previous = self._record_bytes()
                undo.callback(_undoing, "restore the champion record", lambda: self._restore_record(previous))
                self._write_record(promotion)
            earlier = self._version_tags(version)
            undo.callback(_undoing, "restore the version's tags", lambda: self._restore_tags(version, earlier, tags))
            self.registry.set_version_tags(cfg.model_name, version, tags)
            if promotion.decision == "promoted":
                before = promotion.champion_version if promotion.champion_version != version else None
                undo.callback(_undoing, f"move {cfg.alias} back", lambda: self._restore_alias(before))
                self.registry.set_alias(cfg.model_name, cfg.alias, version)
                promotion = promotion.model_copy(update={"champion_version": version})
            undo.pop_all()  # every move made: nothing to undo
        log.log(level, "%s v%d %s: %s", cfg.model_name, version, promotion.decision, promotion.reason)
        return promotion

    def _version_tags(self, version: int) -> dict[str, str]:
        found = [v for v in self.registry.versions(self.config.model_name) if v.version == version]
        return dict(found[0].tags) if found else {}

    def _restore_tags(self, version: int, earlier: Mapping[str, str], written: Mapping[str, str]) -> None:
        name = self.config.model_name
        self.registry.delete_version_tags(name, version, [key for key in written if key not in earlier])
        restored = {key: earlier[key] for key in written if key in earlier}
        if restored:
            self.registry.set_version_tags(name, version, restored)

    def _restore_alias(self, version: int | None) -> None:
        if version is None:
            self.registry.delete_alias(self.config.model_name, self.config.alias)
        else:
            self.registry.set_alias(self.config.model_name, self.config.alias, version)

    @property
    def _record(self) -> Path | None:
        if self.records is None or self.metadata is None:
            return None
        return self.records / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.config.model_name)}.json"

    def _record_bytes(self) -> bytes | None:
        path = self._record
        return path.read_bytes() if path is not None and path.exists() else None

    def _write_record(self, promotion: Promotion) -> None:
        """The champion record, versioned in DVC and pushed: which version, from which run, and why."""
        path, metadata = self._record, self.metadata
        if path is None or metadata is None:
            return
        record: dict[str, Any] = {
            "model_name": promotion.model_name,
            "alias": promotion.alias,
            "version": promotion.version,
            "metric": promotion.metric,
            "value": promotion.candidate_value,
            "reasons": [gate.reason for gate in promotion.gates],
            "approval": promotion.approval.model_dump() if promotion.approval else None,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(record, indent=2))
        metadata.track(path)
        metadata.push()

    def _restore_record(self, previous: bytes | None) -> None:
        path, metadata = self._record, self.metadata
        if path is None or metadata is None:
            return
        if previous is None:
            metadata.untrack(path)
            path.unlink(missing_ok=True)
            return
        path.write_bytes(previous)
        metadata.track(path)


def _metric_of(version: RegisteredVersion | None, metric: str) -> float | None:
    return float(version.tags[f"metric.{metric}"]) if version is not None else None


def _undoing(what: str, undo: Callable[[], None]) -> None:
    """Run one undo step; a step that fails is logged, so the error that caused the undo is the one raised."""
    try:
        undo()
    except Exception:
        log.exception("could not %s while undoing a promotion", what)

"""A sweep's runs under one tracking parent run: each trial is a child run that logs its model and registers
nothing; when all have ended, the best by the sweep's metric is elected and goes through the promoter once.

The flow (``flows.sweep``) runs the trials one after another on the base config's coordinator port (parties
serve one run at a time) and hands each outcome to ``Sweep.finished``; a failed trial is recorded and the
sweep goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from components.adapters.checkpoints import write_text_atomically
from components.adapters.contracts import load_contract
from components.adapters.workspace import Workspace
from components.core.config import FederationConfig, dump_yaml, load_federation_config
from components.core.errors import ConfigError
from components.core.gates import Approval
from components.core.ports import MetadataPort, RegistryPort, TrackerPort
from components.core.sweep import Overrides, SweepConfig, TrialResult, apply_overrides, describe, elect
from components.core.tasks import higher_is_better, metrics_of
from components.run.promoter import Candidate, Promoter
from components.run.summary import Promotion, RunSummary

TRIAL_REASON = "sweep trial: registered only if the sweep elects it"


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: its number (from 1), run id, overrides and federation config file."""

    index: int
    run_id: str
    overrides: Overrides
    config_path: Path


class TrialOutcome(BaseModel):
    """What a finished trial hands back: its final model as logged (not registered) and the data it used."""

    candidate: Candidate
    manifests: dict[str, str] = Field(default_factory=dict)


class SweepSummary(BaseModel):
    """``sweeps/SWEEP_ID.json``: every trial's outcome, the election and the one promotion decision."""

    sweep_id: str
    status: str = "running"  # running | completed (a trial was elected) | failed (no trial completed)
    started_at: str
    finished_at: str | None = None
    mlflow_run_id: str | None = None  # the parent run
    config: dict[str, Any]
    metric: str
    higher_is_better: bool
    trials: list[TrialResult] = Field(default_factory=list)
    elected: str | None = None  # the run id of the best trial
    promotion: Promotion | None = None

    def write(self, path: Path) -> Path:
        return write_text_atomically(path, self.model_dump_json(indent=2))

    @classmethod
    def read(cls, path: Path) -> SweepSummary:
        return cls.model_validate(json.loads(path.read_text()))


class Sweep:
    """The sweep's record and its parent tracking run; every trial's federation config is written (and
    validated) before the first one runs."""

    def __init__(
        self,
        sweep_id: str,
        config: SweepConfig,
        workspace: Workspace,
        tracker: TrackerPort,
        registry: RegistryPort,
        metadata: MetadataPort | None = None,
    ) -> None:
        self.sweep_id = sweep_id
        self.metadata = metadata  # where the champion record is versioned when the elected trial is promoted
        self.promoter: Promoter | None = None
        self.config = config
        self.workspace = workspace.create()
        self.tracker = tracker
        self.registry = registry
        self.base = load_federation_config(config.base)
        self.task = load_contract(self.base.contract.name, self.base.contract.version).task
        promotion = self.base.promotion.resolved(self.task)
        metric = config.metric or promotion.metric or ""
        if metric not in metrics_of(self.task):
            raise ConfigError(
                f"sweep metric {metric!r} is not a {self.task} metric: one of {list(metrics_of(self.task))}"
            )
        better = higher_is_better(metric) if config.higher_is_better is None else config.higher_is_better
        self.folder = self.workspace.root / "sweeps" / sweep_id  # the trials' federation configs
        self.trials = [self._trial(index, overrides) for index, overrides in enumerate(config.trials_overrides(), 1)]
        self.outcomes: dict[str, TrialOutcome] = {}
        self.summary = SweepSummary(
            sweep_id=sweep_id,
            started_at=datetime.now(UTC).isoformat(),
            config=config.model_dump(mode="json"),
            metric=metric,
            higher_is_better=better,
        )

    def _trial(self, index: int, overrides: Overrides) -> Trial:
        config: FederationConfig = apply_overrides(self.base, overrides)
        path = dump_yaml(config, self.folder / f"trial-{index:02d}.yaml")
        return Trial(index, f"{self.sweep_id}-t{index:02d}", overrides, path)

    @property
    def path(self) -> Path:
        return self.workspace.root / "sweeps" / f"{self.sweep_id}.json"

    def start(self) -> str:
        """Open the parent tracking run; returns its id (every trial's run names it as its parent)."""
        self.summary.mlflow_run_id = self.tracker.start(self.sweep_id, tags={"consortia.sweep_id": self.sweep_id})
        self.tracker.log_params(
            {
                "search": self.config.search,
                "trials": len(self.trials),
                "metric": self.summary.metric,
                "base": str(self.config.base),
                "parameters": {path: str(values) for path, values in self.config.parameters.items()},
            }
        )
        self.save()
        return self.summary.mlflow_run_id

    def child_tags(self, trial: Trial) -> dict[str, str]:
        """Tags of a trial's tracking run: its parent (MLflow shows it nested), the sweep and the overrides."""
        return {
            "mlflow.parentRunId": self.summary.mlflow_run_id or "",
            "consortia.sweep_id": self.sweep_id,
            "sweep.trial": str(trial.index),
            **{f"sweep.{path}": str(value) for path, value in trial.overrides.items()},
        }

    def finished(self, trial: Trial, outcome: TrialOutcome | None, error: BaseException | None = None) -> TrialResult:
        """Record a trial that ended (``outcome`` None: it failed with ``error``); the parent logs its metric and
        the best so far at step ``trial.index``."""
        if outcome is not None:
            result = TrialResult(
                index=trial.index,
                run_id=trial.run_id,
                overrides=trial.overrides,
                status="completed",
                metrics=outcome.candidate.metrics,
            )
            self.outcomes[trial.run_id] = outcome
        else:
            message = _one_line(error) if error is not None else "no outcome"
            result = TrialResult(
                index=trial.index, run_id=trial.run_id, overrides=trial.overrides, status="failed", error=message[:2000]
            )
        self.summary.trials.append(result)
        metric = self.summary.metric
        logged = {"trials_failed": float(sum(t.status == "failed" for t in self.summary.trials))}
        if (value := result.value(metric)) is not None:
            logged[metric] = value
        if (best := self.best) is not None and (best_value := best.value(metric)) is not None:
            logged[f"best_{metric}"] = best_value
        self.tracker.log_metrics(logged, step=trial.index)
        self.save()
        return result

    @property
    def best(self) -> TrialResult | None:
        return elect(self.summary.trials, self.summary.metric, self.summary.higher_is_better)

    def promote(self) -> Promotion | None:
        """Register the elected trial's model through the promoter (whose gate decides the alias); None when no
        trial completed. The decision goes into the sweep's record, its parent run and the elected run's summary."""
        best = self.best
        if best is None:
            return None
        outcome = self.outcomes[best.run_id]
        self.promoter = Promoter(
            self.base.promotion,
            self.registry,
            self.task,
            self.metadata,
            self.workspace.metadata_repo / "champions",
        )
        promotion = self.promoter.propose(outcome.candidate)
        version = int(promotion.version or 0)
        self.summary.elected = best.run_id
        self.summary.promotion = promotion
        self.tracker.set_tags(
            {
                "sweep.elected": best.run_id,
                "sweep.elected_trial": str(best.index),
                "sweep.elected_overrides": describe(best.overrides)[:500],
                "promotion.decision": promotion.decision,
                "promotion.reason": promotion.reason,
                "model.version": str(version),
            }
        )
        run_summary = self.workspace.summary_path(best.run_id)
        if run_summary.exists():
            elected = RunSummary.read(run_summary)
            elected.promotion = promotion
            elected.write(run_summary)
        self.save()
        return promotion

    def conclude(self, approval: Approval | None) -> Promotion | None:
        """Decide the elected trial's promotion held for approval with a person's answer (None: nobody answered)."""
        held = self.summary.promotion
        if held is None or self.promoter is None or not held.awaiting_approval:
            return held
        promotion = self.promoter.conclude(held, approval)
        self.summary.promotion = promotion
        self.tracker.set_tags({"promotion.decision": promotion.decision, "promotion.reason": promotion.reason})
        if self.summary.elected and (run_summary := self.workspace.summary_path(self.summary.elected)).exists():
            elected = RunSummary.read(run_summary)
            elected.promotion = promotion
            elected.write(run_summary)
        self.save()
        return promotion

    def finish(self) -> Path:
        """Close the parent run: completed when a trial was elected, failed when none completed."""
        self.summary.status = "completed" if self.summary.elected else "failed"
        self.summary.finished_at = datetime.now(UTC).isoformat()
        path = self.save()
        self.tracker.log_json(self.summary.model_dump(mode="json"), "sweep.json")
        self.tracker.finish("FINISHED" if self.summary.elected else "FAILED")
        return path

    def save(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.summary.write(self.path)


def _one_line(error: BaseException) -> str:
    """``ConfigError: model: ... input_shape [7] holds 7 values ...``: the error on one line, without pydantic's
    pointers to its documentation."""
    lines = [line.strip() for line in str(error).splitlines() if not line.strip().startswith("For further info")]
    return f"{type(error).__name__}: {' '.join(line for line in lines if line)}"


class NestedTracker:
    """A trial's tracker: the run it starts carries the sweep's tags (``mlflow.parentRunId``: nested under the
    sweep's run); everything else is the wrapped tracker's."""

    def __init__(self, inner: TrackerPort, tags: dict[str, str]) -> None:
        self.inner = inner
        self.tags = tags

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        return self.inner.start(run_name, {**tags, **self.tags})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

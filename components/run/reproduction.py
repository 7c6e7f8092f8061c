"""Reproducing a registered version: its recorded run (frozen config, data manifests, contract versions, final
model and metrics) against a rerun on the same parties.

The record is the workspace's: ``checkpoints/RUN_ID/federation.json`` (the config the run started with),
``runs/RUN_ID.json`` (manifests, validation summaries, rounds, final metrics) and the final model versioned with
DVC (``metadata/models/RUN_ID.npz``; the run's last checkpoint where it is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, computed_field

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.adapters.workspace import Workspace
from components.core.errors import NotReproducible
from components.core.params import Params
from components.core.ports import RegisteredVersion
from components.run.records import ValidationResult
from components.run.summary import RunSummary

TOLERANCE = 1e-6


@dataclass(frozen=True)
class RecordedRun:
    """What a registered version's run left in the workspace."""

    run_id: str
    config_path: Path
    summary: RunSummary
    final_params: Params

    @classmethod
    def of_version(cls, workspace: Workspace, version: RegisteredVersion) -> RecordedRun:
        run_id = version.tags.get("consortia.run_id")
        if not run_id:
            raise NotReproducible(f"{version.name} v{version.version} has no consortia.run_id tag: no run to rerun")
        return cls.load(workspace, run_id)

    @classmethod
    def load(cls, workspace: Workspace, run_id: str) -> RecordedRun:
        checkpoints = RunCheckpoints(workspace.checkpoints, run_id)
        summary_path = workspace.summary_path(run_id)
        for needed in (checkpoints.config, summary_path):
            if not needed.exists():
                raise NotReproducible(f"run {run_id}: {needed} is missing from the workspace {workspace.root}")
        summary = RunSummary.read(summary_path)
        if summary.status != "completed" or not summary.rounds:
            raise NotReproducible(f"run {run_id} is {summary.status}: only a completed run has a model to reproduce")
        versioned = workspace.metadata_repo / "models" / f"{run_id}.npz"
        final_round = max(row.round for row in summary.rounds)
        final = load_arrays(versioned if versioned.exists() else checkpoints.global_params(final_round))
        return cls(run_id, checkpoints.config, summary, final)


def check_same_data(recorded: RunSummary, validation: ValidationResult) -> None:
    """``NotReproducible`` naming the first party whose data manifest, contract version or row count differs from
    the recorded run's (or that did not validate this time)."""
    for party, recorded_hash in sorted(recorded.manifests.items()):
        summary = validation.summaries.get(party)
        manifest = validation.manifests.get(party)
        if summary is None or manifest is None:
            raise NotReproducible(f"party {party} took part in run {recorded.run_id} but did not validate its data now")
        now = str(manifest.get("content_hash", ""))
        if now != recorded_hash:
            raise NotReproducible(
                f"party {party}'s data changed since run {recorded.run_id}: manifest {recorded_hash} then, {now} now"
            )
        then = recorded.validation.get(party, {})
        then_contract = (then.get("contract"), then.get("version"), then.get("row_count"))
        now_contract = (summary.contract, summary.version, summary.row_count)
        if then and then_contract != now_contract:
            raise NotReproducible(
                f"party {party} validated {then_contract[0]}@v{then_contract[1]} ({then_contract[2]} rows) in run "
                f"{recorded.run_id}, {now_contract[0]}@v{now_contract[1]} ({now_contract[2]} rows) now"
            )
    extra = sorted(set(validation.manifests) - set(recorded.manifests))
    if extra:
        raise NotReproducible(f"parties {', '.join(extra)} take part now but not in run {recorded.run_id}")


class MetricMatch(BaseModel):
    recorded: float
    rerun: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def difference(self) -> float:
        return float("inf") if self.rerun is None else abs(self.rerun - self.recorded)


class Reproduction(BaseModel):
    """How a rerun compares with the recorded run: final parameters, final and per-round metrics, participants."""

    model: str
    version: int
    recorded_run: str
    rerun: str
    tolerance: float = TOLERANCE
    parameters_max_difference: float
    final_metrics: dict[str, MetricMatch] = Field(default_factory=dict)
    rounds_max_difference: float = 0.0
    mismatches: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def matches(self) -> bool:
        return not self.mismatches


def compare(
    recorded: RecordedRun, rerun: RunSummary, rerun_params: Params, version: RegisteredVersion, tolerance: float
) -> Reproduction:
    """The rerun against the record, within ``tolerance`` (absolute) for every parameter and metric."""
    mismatches: list[str] = []
    if set(rerun_params) != set(recorded.final_params):
        mismatches.append(f"the model's tensors differ: {sorted(set(rerun_params) ^ set(recorded.final_params))}")
        parameters = float("inf")
    else:
        parameters = max(
            (float(np.max(np.abs(rerun_params[n] - recorded.final_params[n]), initial=0.0)) for n in rerun_params),
            default=0.0,
        )
        if parameters > tolerance:
            mismatches.append(f"model parameters differ by up to {parameters:.3g}")
    then = recorded.summary.final_metrics.present() if recorded.summary.final_metrics else {}
    now = rerun.final_metrics.present() if rerun.final_metrics else {}
    final = {name: MetricMatch(recorded=value, rerun=now.get(name)) for name, value in then.items()}
    for name, match in final.items():
        if match.difference > tolerance:
            mismatches.append(f"final {name} {match.rerun} against {match.recorded} recorded")
    old_rows = {row.round: row for row in recorded.summary.rounds}
    new_rows = {row.round: row for row in rerun.rounds}
    if sorted(old_rows) != sorted(new_rows):
        mismatches.append(f"rounds {sorted(new_rows)} ran, {sorted(old_rows)} were recorded")
    rounds = 0.0
    for number in sorted(set(old_rows) & set(new_rows)):
        old, new = old_rows[number], new_rows[number]
        if sorted(old.participants) != sorted(new.participants):
            mismatches.append(f"round {number}: {sorted(new.participants)} took part, {sorted(old.participants)} then")
        old_metrics, new_metrics = old.metrics.present(), new.metrics.present()
        for name, value in old_metrics.items():
            rounds = max(rounds, abs(new_metrics.get(name, float("inf")) - value))
    if rounds > tolerance:
        mismatches.append(f"per-round metrics differ by up to {rounds:.3g}")
    return Reproduction(
        model=version.name,
        version=version.version,
        recorded_run=recorded.run_id,
        rerun=rerun.run_id,
        tolerance=tolerance,
        parameters_max_difference=parameters,
        final_metrics=final,
        rounds_max_difference=rounds,
        mismatches=mismatches,
    )

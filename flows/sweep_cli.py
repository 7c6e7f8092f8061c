"""``consortia sweep sweep.yaml``: a grid or random search over a federation's settings, one line per trial."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.adapters.workspace import Workspace
from components.core.errors import ConsortiaError
from components.core.sweep import TrialResult, describe, load_sweep_config
from components.run.logs import log_to_file

if TYPE_CHECKING:
    from components.run.sweep import Sweep, SweepSummary

console = Console()


def sweep(
    config: Annotated[Path, typer.Argument(help="sweep.yaml: base federation config, search, parameters, metric")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
    ] = None,
) -> None:
    """Run every trial of a sweep against the base config's parties, one after another (MLflow child runs under
    one parent run); the best by the sweep's metric goes through promotion. Exit code 1 if no trial completed."""
    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)
    try:
        sweep_config = load_sweep_config(config)
        from components.core.config import load_federation_config

        base = load_federation_config(sweep_config.base)
    except ConsortiaError as error:
        _fail(str(error))
    from components.run.federation import new_run_id  # imports torch: only for a valid config

    sweep_id = new_run_id(f"{base.name}-sweep")
    space.activate()
    from flows.sweep import run_sweep  # imports prefect: only after PREFECT_HOME is set

    trials = len(sweep_config.trials_overrides())
    console.print(
        f"sweep {sweep_id}: {trials} trials ({sweep_config.search}) on {base.coordinator.bind}, "
        f"{len(base.parties)} parties",
        soft_wrap=True,
    )

    def on_trial(result: TrialResult, state: Sweep) -> None:
        console.print(trial_line(result, state, trials), soft_wrap=True)

    try:
        path = run_sweep(config, space.root, sweep_id, on_trial)
    except Exception as error:  # a typed error, or Prefect's own (e.g. its local server did not start)
        _fail(f"sweep {sweep_id} failed: {error}")
    from components.run.sweep import SweepSummary

    summary = SweepSummary.read(path)
    print_sweep(summary)
    console.print(f"sweep record {path}")
    if summary.status != "completed":
        raise typer.Exit(code=1)


def trial_line(result: TrialResult, state: Sweep, total: int) -> str:
    """``trial 2/4 run-t02 training.learning_rate=0.05: accuracy 0.9561, best 0.9649 (trial 1)``."""
    metric = state.summary.metric
    head = f"trial {result.index}/{total} {result.run_id} {escape(describe(result.overrides))}"
    best = state.best
    best_text = f"best {best.metrics[metric]:.4f} (trial {best.index})" if best is not None else "no best yet"
    if result.status != "completed":
        return f"{head}: [red]failed[/red] {escape(result.error or '')[:300]}; {best_text}"
    return f"{head}: {metric} {result.metrics[metric]:.4f}, {best_text}"


def print_sweep(summary: SweepSummary) -> None:
    table = Table(title=f"sweep {summary.sweep_id}: elected by {summary.metric}")
    for column in ("trial", "run", "settings", "status", summary.metric):
        table.add_column(column, justify="right" if column in ("trial", summary.metric) else "left")
    for trial in summary.trials:
        value = trial.value(summary.metric)
        marker = " *" if trial.run_id == summary.elected else ""
        table.add_row(
            str(trial.index),
            trial.run_id,
            escape(describe(trial.overrides)),
            trial.status,
            (f"{value:.4f}" if value is not None else "-") + marker,
        )
    console.print(table)
    if summary.promotion is None:
        console.print("[red]no trial completed[/red]: nothing elected, nothing promoted")
        return
    p = summary.promotion
    console.print(
        f"elected {summary.elected}; promotion: [bold]{p.decision}[/bold]: registered {p.model_name} v{p.version}, "
        f"@{p.alias} is v{p.champion_version}: {escape(p.reason)}",
        soft_wrap=True,
    )


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=1)

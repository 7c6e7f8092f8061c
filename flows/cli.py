"""``consortia``: the MLOps engineer's command line (demo, run, runs)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import ConsortiaError
from components.run.logs import log_to_file
from components.run.summary import RoundRow, RunSummary
from flows.admission_cli import readmit
from flows.contract_cli import contract_app

app = typer.Typer(help="Consortia: federated learning as an ordinary MLOps workflow.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
app.command()(readmit)
console = Console()
WorkspaceOption = Annotated[
    Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
]


def _setup_logging(workspace: Workspace) -> None:
    log_to_file(workspace.coordinator_log)


def _run_with_progress(config_path: Path, workspace: Workspace, run_id: str, rounds: int) -> Path:
    """Run the federation flow in this process with one progress bar tick per round."""
    workspace.activate()
    from flows.federation import run_federation  # imports prefect: only after PREFECT_HOME is set

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("rounds", total=rounds, status="waiting for parties, validating contracts")

        def on_round(row: RoundRow) -> None:
            progress.update(
                bar,
                completed=row.round,
                status=f"round {row.round}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.metrics.present().items()),
            )

        try:
            return run_federation(config_path, workspace.root, run_id, on_round)
        except KeyboardInterrupt:  # typer turns it into exit code 130 without a word: say what happened
            console.print(f"[red]interrupted:[/red] run {run_id} stopped; stopping every process this command started")
            raise


def print_summary(summary: RunSummary) -> None:
    table = Table(title=f"run {summary.run_id}")
    metrics = list(summary.rounds[0].metrics.present()) if summary.rounds else ["loss"]
    for column in ("round", "parties", *metrics, "seconds", "bytes up", "bytes down"):
        table.add_column(column, justify="right")
    private = any(row.epsilon is not None for row in summary.rounds)
    if private:
        table.add_column("epsilon", justify="right")
    for row in summary.rounds:
        table.add_row(
            str(row.round),
            str(len(row.participants)),
            *(f"{getattr(row.metrics, name):.4f}" for name in metrics),
            f"{row.seconds:.2f}",
            f"{row.bytes_up:,}",
            f"{row.bytes_down:,}",
            *([f"{row.epsilon:.3f}"] if private and row.epsilon is not None else []),
        )
    console.print(table)
    contributions = Table(title=f"contributions ({summary.valuation_method})")
    contributions.add_column("party")
    contributions.add_column("value", justify="right")
    contributions.add_column("manifest", justify="left")
    for party, value in sorted(summary.contributions.items(), key=lambda kv: -kv[1]):
        contributions.add_row(party, f"{value:+.4f}", summary.manifests.get(party, ""))
    console.print(contributions)
    if summary.final_metrics:
        headline = "accuracy" if summary.final_metrics.accuracy is not None else "r2"
        line = f"final held-out {headline} {getattr(summary.final_metrics, headline):.4f}"
        if summary.centralized_baseline:
            line += f" (centralized baseline {getattr(summary.centralized_baseline, headline):.4f})"
        console.print(line)
    if summary.stopped_early:
        console.print(f"[yellow]stopped early:[/yellow] {summary.stopped_early}")
    if summary.promotion:
        p = summary.promotion
        console.print(f"promotion: [bold]{p.decision}[/bold] {p.model_name} v{p.version} @{p.alias}: {p.reason}")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")  # messages list choices in [brackets]
    raise typer.Exit(code=1)


@app.command()
def demo(
    workspace: WorkspaceOption = None,
    parties: Annotated[int, typer.Option(help="Number of party agents.")] = 3,
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 10,
    partition: Annotated[str, typer.Option(help="iid, dirichlet or quantity.")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller = more skew).")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed for split, partition and model.")] = 0,
    summary: Annotated[Path | None, typer.Option(help="Where to write the run summary JSON.")] = None,
) -> None:
    """Split breast-cancer data among local party agents and train a model across them."""
    from components.run.federation import new_run_id
    from flows.demo import centralized_baseline, prepare_demo
    from flows.processes import PartyProcesses

    space = Workspace.at(workspace)
    _setup_logging(space)
    if partition not in ("iid", "dirichlet", "quantity"):
        _fail(f"unknown partition {partition!r}; choose iid, dirichlet or quantity")
    kind: Literal["iid", "dirichlet", "quantity"] = partition  # type: ignore[assignment]
    started = time.perf_counter()
    layout = prepare_demo(space, parties=parties, rounds=rounds, partition_kind=kind, alpha=alpha, seed=seed)
    config = load_federation_config(layout.federation_config)
    run_id = new_run_id(config.name)
    console.print(f"workspace {space.root}\nrun {run_id}: {parties} parties, {rounds} rounds, {partition} split")
    with PartyProcesses(layout.party_configs, space.logs) as processes:
        try:
            path = _run_with_progress(layout.federation_config, space, run_id, rounds)
        except (ConsortiaError, Exception) as error:
            for name, code in processes.dead().items():
                console.print(f"party {name} exited with {code}:\n{processes.log_tail(name)}")
            _fail(f"run {run_id} failed: {error}")
    result = RunSummary.read(path)
    result.centralized_baseline = centralized_baseline(layout, config)
    result.write(path)
    if summary is not None:
        result.write(summary)
    print_summary(result)
    console.print(f"summary {summary or path}  ({time.perf_counter() - started:.1f} s)")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="federation.yaml")],
    workspace: WorkspaceOption = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (default: generated).")] = None,
    summary: Annotated[Path | None, typer.Option(help="Also write the run summary JSON here.")] = None,
) -> None:
    """Run a federation against party agents that were started with ``party-agent run``."""
    space = Workspace.at(workspace)
    _setup_logging(space)
    try:
        federation = load_federation_config(config)
    except ConsortiaError as error:
        _fail(str(error))
    from components.run.federation import new_run_id  # imports torch (seconds): only for a valid config

    chosen = run_id or new_run_id(federation.name)
    console.print(f"run {chosen}: waiting for {len(federation.parties)} parties on {federation.coordinator.bind}")
    try:
        path = _run_with_progress(config, space, chosen, federation.rounds)
    except Exception as error:
        _fail(f"run {chosen} failed: {error}")
    result = RunSummary.read(path)
    if summary is not None:
        result.write(summary)
    print_summary(result)
    console.print(f"summary {summary or path}")


@app.command()
def schedule(
    config: Annotated[Path, typer.Argument(help="federation.yaml")],
    workspace: WorkspaceOption = None,
    cron: Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 2 * * *" (02:00 every day).')] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between runs (instead of --cron).")] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name (default: the federation's name).")] = None,
) -> None:
    """Run a federation on a schedule: a Prefect deployment served by this process until Ctrl-C or SIGTERM."""
    from flows.schedule import describe_schedule, prefect_server_url, serve_schedule

    space = Workspace.at(workspace)
    _setup_logging(space)
    try:
        when, server = describe_schedule(cron, interval), prefect_server_url()
        federation = load_federation_config(config)  # validated even when --name is given
        deployment = name or federation.name
    except ConsortiaError as error:
        _fail(str(error))
    space.activate()
    console.print(f"serving deployment {deployment!r} ({when}) on {server}; Ctrl-C stops")
    try:
        serve_schedule(config, space.root, deployment, cron=cron, interval_s=interval)
    finally:  # Prefect's runner ends on Ctrl-C or SIGTERM, cancelling a run in progress
        console.print(f"stopped serving {deployment!r}; its schedule is paused")


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue from its last finished round.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Continue a run that stopped (e.g. the coordinator died), keeping its round numbers and MLflow run."""
    from components.adapters.checkpoints import RunCheckpoints

    space = Workspace.at(workspace)
    _setup_logging(space)
    checkpoints = RunCheckpoints(space.checkpoints, run_id)
    if not checkpoints.config.exists():
        _fail(f"no checkpoints for run {run_id!r} in {space.checkpoints}")
    try:
        federation = load_federation_config(checkpoints.config)
    except ConsortiaError as error:
        _fail(f"run {run_id} cannot resume: its frozen config is invalid: {error}")
    console.print(f"resuming {run_id} after round {max(checkpoints.last_round(), 0)} of {federation.rounds}")
    try:
        path = _run_with_progress(checkpoints.config, space, run_id, federation.rounds)
    except Exception as error:
        _fail(f"run {run_id} failed: {error}")
    print_summary(RunSummary.read(path))
    console.print(f"summary {path}")


@app.command()
def rewards(
    run_id: Annotated[str, typer.Argument(help="The run to report.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Per-round and total contributions, rewards, reward models and reputation of one run."""
    path = Workspace.at(workspace).summary_path(run_id)
    if not path.exists():
        _fail(f"no run summary for {run_id!r} at {path}")
    summary = RunSummary.read(path)
    rounds = sorted(summary.round_contributions)
    table = Table(title=f"{run_id}: contributions ({summary.valuation_method}) and rewards")
    for column in ("party", *[f"r{r}" for r in rounds], "total", "reward", "reward model", "reputation"):
        table.add_column(column, justify="right")
    for party in sorted(set(summary.contributions) | set(summary.rewards)):
        model = summary.model_rewards.get(party)
        model_text = f"{len(model.sources)} parties" if model else ""
        if model and model.accuracy is not None:
            model_text += f", accuracy {model.accuracy:.3f}"
        table.add_row(
            party,
            *[f"{summary.round_contributions[r].get(party, 0.0):+.4f}" for r in rounds],
            f"{summary.contributions.get(party, 0.0):+.4f}",
            f"{summary.rewards.get(party, 0.0):.2f}",
            model_text,
            f"{summary.reputation[party]:.3f}" if party in summary.reputation else "",
        )
    console.print(table)


@app.command()
def parties(workspace: WorkspaceOption = None) -> None:
    """Parties known to the federation store: status, last heartbeat, resources, rounds, reputation."""
    from components.adapters.store import FederationStore

    store = FederationStore(Workspace.at(workspace).store_url)
    table = Table(title="parties")
    for column in (
        "party",
        "status",
        "last heartbeat",
        "cores",
        "memory MB",
        "joined",
        "missed",
        "rejected",
        "reputation",
    ):
        table.add_column(column)
    for row in store.party_overview():
        resources = row["resources"] or {}
        table.add_row(
            row["name"],
            row["status"],
            str(row["last_seen"] or "")[:19],
            str(resources.get("cores", "")),
            f"{resources.get('memory_mb', 0):.0f}",
            str(row["rounds_joined"] or 0),
            str(row["rounds_missed"] or 0),
            str(row["rejected_messages"] or 0),
            f"{row['reputation']:.3f}",
        )
    console.print(table)


@app.command()
def dashboard(
    workspace: WorkspaceOption = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Open the read-only stakeholder dashboard (Streamlit) on this workspace's stores."""
    import subprocess

    entry = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"
    environment = {**os.environ, "CONSORTIA_WORKSPACE": str(Workspace.at(workspace).root)}
    console.print(f"dashboard on http://{address}:{port}  (Ctrl-C to stop)")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    raise typer.Exit(subprocess.call(command, env=environment))


@app.command()
def keys(
    name: Annotated[str, typer.Argument(help="Key name, e.g. coordinator.")] = "coordinator",
    out: Annotated[Path, typer.Option(help="Folder for NAME.key and NAME.key_secret.")] = Path("keys"),
) -> None:
    """Create a CURVE key pair; prints the public key to give to the data owners."""
    from components.adapters.transport import read_public_key, write_keypair

    public_path, secret_path = write_keypair(out, name)
    console.print(f"secret key {secret_path} (keep private)\npublic key {public_path}:")
    typer.echo(read_public_key(public_path))


@app.command()
def runs(workspace: WorkspaceOption = None) -> None:
    """List the runs recorded in the workspace."""
    from components.adapters.store import FederationStore

    store = FederationStore(Workspace.at(workspace).store_url)
    table = Table(title="runs")
    for column in ("run", "federation", "status", "started", "finished"):
        table.add_column(column)
    for row in store.run_rows():
        table.add_row(
            row["run_id"],
            row["federation"],
            row["status"],
            str(row["started_at"])[:19],
            str(row["finished_at"] or "")[:19],
        )
    console.print(table)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Entry point: SIGTERM behaves like Ctrl-C (exit code 130), so every started process is stopped on the way out."""
    signal.signal(signal.SIGTERM, _interrupt)
    app()


if __name__ == "__main__":
    main()

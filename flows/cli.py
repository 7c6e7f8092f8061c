"""``consortia``: the MLOps engineer's command line (demo, run, runs)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from components.adapters.workspace import Workspace
from components.core.errors import ConsortiaError
from components.run.logs import log_to_file
from components.run.summary import RoundRow, RunSummary
from flows.admission_cli import readmit
from flows.approval_cli import approve
from flows.contract_cli import contract_app
from flows.deploy import deploy
from flows.glm_cli import print_glm
from flows.options import CronOption, DeploymentNameOption, IntervalOption, WorkspaceOption
from flows.prefect_cli import prefect_app
from flows.progress import rounds_progress
from flows.reproduce_cli import reproduce
from flows.rewards_report import rewards_report
from flows.simulate_cli import simulate
from flows.stats_cli import stats
from flows.sweep_cli import sweep

app = typer.Typer(help="Consortia: federated learning as an ordinary MLOps workflow.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
app.add_typer(prefect_app, name="prefect")
app.command("stats")(stats)
app.command()(readmit)
app.command()(deploy)
app.command()(approve)
app.command()(sweep)
app.command()(reproduce)
app.command()(simulate)
console = Console()


def _setup_logging(workspace: Workspace) -> None:
    log_to_file(workspace.coordinator_log)
    _end_orphaned_servers(workspace)


def _end_orphaned_servers(workspace: Workspace) -> None:
    """End the embedded Prefect servers of this workspace whose coordinator died (SIGKILL leaves them running)."""
    from components.adapters.orphans import end_orphaned_servers

    for pid in end_orphaned_servers(workspace.prefect_home):
        console.print(f"ended Prefect server pid {pid}: its coordinator had died without stopping it")


def _recorded_store(workspace: Workspace) -> str:
    """The workspace's store URL; a friendly exit when its SQLite file does not exist yet (nothing recorded)."""
    if _no_store_yet(workspace.store_url):
        console.print(
            f"nothing recorded in {workspace.root} yet: run `consortia demo` or `consortia run CONFIG` first",
            soft_wrap=True,
        )
        raise typer.Exit(code=0)
    return workspace.store_url


def _no_store_yet(url: str) -> bool:
    """True for a SQLite URL whose file does not exist (opening it would create it)."""
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def _whole_run_id(workspace: Workspace, given: str) -> str:
    """The run id ``given`` names: itself, or the one recorded run id it is a unique prefix of."""
    from components.adapters.store import FederationStore

    known = {path.stem for path in workspace.runs.glob("*.json")}
    if not _no_store_yet(workspace.store_url):
        known |= {row["run_id"] for row in FederationStore(workspace.store_url).run_rows()}
    if given in known:
        return given
    matches = sorted(run for run in known if run.startswith(given))
    if len(matches) > 1:
        _fail(f"{given!r} names {len(matches)} runs ({', '.join(matches)}); give more of the id")
    return matches[0] if matches else given


def _run_with_progress(config_path: Path, workspace: Workspace, run_id: str, rounds: int) -> Path:
    """Run the federation flow in this process with one progress bar tick per round."""
    from flows.startup import open_for_run

    open_for_run(workspace)
    from flows.federation import run_federation

    with (
        rounds_progress(console) as progress,
        _said_on(progress.console, "components.run.directory"),
        _said_on(progress.console, "flows.approval"),  # a promotion held for approval says how to answer it
    ):
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


@contextlib.contextmanager
def _said_on(screen: Console, logger: str) -> Iterator[None]:
    """Also print ``logger``'s records (INFO and up) on ``screen`` while inside: who is awaited, who is left out."""
    handler = RichHandler(logging.INFO, console=screen, show_time=False, show_path=False, show_level=False)
    logging.getLogger(logger).addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger(logger).removeHandler(handler)


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
    if summary.glm is not None:
        print_glm(summary.glm, console)
    console.print(*rewards_report(summary))
    if summary.final_metrics:
        headline = "accuracy" if summary.final_metrics.accuracy is not None else "r2"
        line = f"final held-out {headline} {getattr(summary.final_metrics, headline):.4f}"
        if summary.centralized_baseline:
            line += f" (centralized baseline {getattr(summary.centralized_baseline, headline):.4f})"
        console.print(line)
    if summary.stopped_early:
        console.print(f"[yellow]stopped early:[/yellow] {summary.stopped_early}")
    if summary.evaluation is not None and summary.promotion and summary.promotion.metric in summary.evaluation.gaps:
        metric = summary.promotion.metric
        gap = summary.evaluation.gaps[metric]
        parties = ", ".join(f"{n} {p.metrics[metric]:.4f}" for n, p in summary.evaluation.parties.items())
        console.print(f"per-party {metric}: {parties}; fairness gap {gap.gap:.4f} (worst {gap.worst_party})")
    if summary.promotion:
        p = summary.promotion
        console.print(
            f"promotion: [bold]{p.decision}[/bold]: registered {p.model_name} v{p.version}, "
            f"@{p.alias} is v{p.champion_version}: {p.reason}"
        )


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)  # choices in [brackets]; one line
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
    from components.core.config import load_federation_config
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
    from components.core.config import load_federation_config

    space = Workspace.at(workspace)
    _setup_logging(space)
    try:
        federation = load_federation_config(config)
    except ConsortiaError as error:
        _fail(str(error))
    from components.run.federation import new_run_id  # imports torch (seconds): only for a valid config

    chosen = run_id or new_run_id(federation.name)
    from components.run.summary import refuse_finished

    try:
        refuse_finished(space.summary_path(chosen))
    except ConsortiaError as error:
        _fail(str(error))
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
    cron: CronOption = None,
    interval: IntervalOption = None,
    name: DeploymentNameOption = None,
) -> None:
    """Run a federation on a schedule: a Prefect deployment served by this process until Ctrl-C or SIGTERM."""
    from flows.schedule import schedule_target, serve_schedule

    space = Workspace.at(workspace)
    _setup_logging(space)
    try:
        when, server, deployment = schedule_target(config, cron, interval, name)
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
    """Continue a run that stopped (e.g. the coordinator died), keeping its round numbers and MLflow run.
    A run that completed is final and is refused; so is a run whose coordinator is still alive."""
    from components.adapters.checkpoints import RunCheckpoints
    from components.core.config import load_federation_config
    from components.run.summary import refuse_finished

    space = Workspace.at(workspace)
    _setup_logging(space)
    run_id = _whole_run_id(space, run_id)
    checkpoints = RunCheckpoints(space.checkpoints, run_id)
    if not checkpoints.config.exists():
        _fail(f"no checkpoints for run {run_id!r} in {space.checkpoints}")
    try:
        refuse_finished(space.summary_path(run_id))
    except ConsortiaError as error:
        _fail(str(error))
    if checkpoints.coordinator_alive():
        _fail(f"run {run_id} is running: its coordinator is alive (stop it first, or let it finish)")
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
    per_round: Annotated[bool, typer.Option("--per-round", help="Every valued round's values, not a summary.")] = False,
) -> None:
    """Contributions (with their error), rewards, reward models and reputation of one run; rounds summarised."""
    run_id = _whole_run_id(Workspace.at(workspace), run_id)
    path = Workspace.at(workspace).summary_path(run_id)
    if not path.exists():
        _fail(f"no run summary for {run_id!r} at {path}")
    console.print(*rewards_report(RunSummary.read(path), per_round=per_round))


@app.command()
def parties(workspace: WorkspaceOption = None) -> None:
    """Parties known to the federation store: status, last heartbeat, resources, rounds, reputation."""
    from components.adapters.store import FederationStore

    space = Workspace.at(workspace)
    _end_orphaned_servers(space)
    store = FederationStore(_recorded_store(space))
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
    port: Annotated[int, typer.Option(help="Port to listen on (on --address).")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Open the read-only stakeholder dashboard (Streamlit) on this workspace's stores."""
    import subprocess

    entry = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"
    space = Workspace.at(workspace)
    _end_orphaned_servers(space)
    environment = {**os.environ, "CONSORTIA_WORKSPACE": str(space.root)}
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
def serve(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME@VERSION, e.g. consortia-breast-cancer@champion.")],
    workspace: WorkspaceOption = None,
    port: Annotated[int, typer.Option(help="Port to listen on, on 127.0.0.1.")] = 5000,
) -> None:
    """Serve a registered model over HTTP (MLflow's scoring server): POST /invocations with dataframe_split or
    dataframe_records JSON."""
    from flows.serve import ModelReference, refuse_taken_port, resolved_version, serve_model

    tracking_uri = Workspace.at(workspace).tracking_uri
    if _no_store_yet(tracking_uri):
        _fail(f"no MLflow store at {tracking_uri}: run `consortia demo` or `consortia run CONFIG` first")
    try:
        reference = ModelReference.parse(model)
        version = resolved_version(tracking_uri, reference)
        refuse_taken_port("127.0.0.1", port)
    except ConsortiaError as error:
        _fail(str(error))
    url = f"http://127.0.0.1:{port}/invocations"
    console.print(f"serving {reference.name} version {version} on {url}  (Ctrl-C to stop)", soft_wrap=True)
    serve_model(tracking_uri, reference.name, version, port)


@app.command()
def keys(
    name: Annotated[str, typer.Argument(help="Key name, e.g. coordinator.")] = "coordinator",
    out: Annotated[Path, typer.Option(help="Folder for NAME.key and NAME.key_secret.")] = Path("keys"),
    force: Annotated[bool, typer.Option(help="Replace an existing key pair (tell the parties).")] = False,
) -> None:
    """Create a CURVE key pair; prints the public key to give to the data owners. An existing pair is kept
    unless --force."""
    from components.adapters.transport import read_public_key, write_keypair

    try:
        public_path, secret_path = write_keypair(out, name, overwrite=force)
    except ConsortiaError as error:
        _fail(str(error))
    console.print(f"secret key {secret_path} (keep private)\npublic key {public_path}:")
    typer.echo(read_public_key(public_path))


@app.command()
def runs(workspace: WorkspaceOption = None) -> None:
    """List the runs recorded in the workspace, whole ids first; a run whose coordinator died is interrupted."""
    from components.adapters.checkpoints import shown_status
    from components.adapters.store import FederationStore

    space = Workspace.at(workspace)
    _end_orphaned_servers(space)
    rows = FederationStore(_recorded_store(space)).run_rows()
    statuses = [shown_status(space.checkpoints, row["run_id"], row["status"]) for row in rows]
    named = all(row["run_id"].startswith(row["federation"]) for row in rows)  # default ids start with it
    table = Table(title="runs", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=True, min_width=max((len(row["run_id"]) for row in rows), default=3))
    table.add_column("status", no_wrap=True, min_width=len("interrupted"))
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True, min_width=len("took"))
    if not named:
        table.add_column("federation", overflow="fold")
    for row, status in zip(rows, statuses, strict=True):
        started, finished = row["started_at"], row["finished_at"]
        took = f"{(finished - started).total_seconds():.0f} s" if finished else ""
        table.add_row(row["run_id"], status, f"{started:%Y-%m-%d %H:%M}", took, *([] if named else [row["federation"]]))
    console.print(table)
    if "interrupted" in statuses:
        console.print("interrupted: the coordinator died; `consortia resume RUN_ID` continues it", soft_wrap=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Entry point: SIGTERM behaves like Ctrl-C (exit code 130), so every started process is stopped on the way out."""
    signal.signal(signal.SIGTERM, _interrupt)
    app()


if __name__ == "__main__":
    main()

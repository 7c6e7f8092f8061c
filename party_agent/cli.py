"""``party-agent``: the data owner's command line (init, check, run)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.adapters.transport import read_public_key, write_keypair
from components.core.config import dump_yaml
from components.core.errors import ConsortiaError
from components.core.policy import PartyPolicy
from components.run.logs import configure_logging
from party_agent.audit_cli import audit_app
from party_agent.config import PartyConfig, load_party_config
from party_agent.plans_cli import approve, deny, requests

app = typer.Typer(
    help="Run a Consortia party next to your data. Rows never leave this machine.",
    no_args_is_help=True,
)
console = Console(stderr=True)
for command in (requests, approve, deny):
    app.command()(command)
app.add_typer(audit_app, name="audit")


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


@app.command()
def init(
    name: Annotated[str, typer.Option(help="This party's name, as the federation config lists it.")],
    data: Annotated[Path, typer.Option(help="The CSV with your rows (stays here).")],
    contract: Annotated[str, typer.Option(help="Data contract name, e.g. breast_cancer.")],
    coordinator_key: Annotated[str, typer.Option(help="The coordinator's CURVE public key (Z85, 40 chars).")],
    coordinator: Annotated[str, typer.Option(help="Coordinator address.")] = "tcp://127.0.0.1:5555",
    out: Annotated[Path | None, typer.Option(help="Folder for party.yaml and keys (default: next to the CSV).")] = None,
) -> None:
    """Write party.yaml and a CURVE key pair next to your data; prints the public key to share."""
    folder = (out or data.resolve().parent).resolve()
    public_path, secret_path = write_keypair(folder / "keys", name)
    config = PartyConfig(
        name=name,
        data=data.resolve(),
        contract=contract,
        coordinator=coordinator,
        coordinator_public_key=coordinator_key,
        secret_key_file=secret_path,
        audit_log=folder / "audit.jsonl",
        policy=dump_yaml(PartyPolicy(coordinators=[coordinator_key]), folder / "policy.yaml"),
    )
    path = dump_yaml(config, folder / "party.yaml")
    public = read_public_key(public_path)
    console.print(f"wrote {path}\nyour public key (give it to the federation's MLOps engineer): {public}")
    typer.echo(public)


@app.command()
def check(config: Annotated[Path, typer.Option(help="party.yaml")]) -> None:
    """Check your CSV against its data contract locally; prints only a summary."""
    from components.adapters.contracts import load_contract, read_dataset, validate_dataset

    try:
        party = load_party_config(config)
        contract = load_contract(party.contract, party.contract_version)
        summary = validate_dataset(read_dataset(party.data, contract), contract)
    except ConsortiaError as error:
        _fail(error)
    table = Table(title=f"{party.name}: {contract.ref}, {summary.row_count} rows")
    table.add_column("expectation")
    table.add_column("column")
    table.add_column("result")
    for outcome in summary.outcomes:
        table.add_row(
            outcome.expectation,
            outcome.column or "",
            "pass" if outcome.success else "[red]FAIL[/red]",
        )
    Console().print(table)
    from components.adapters.manifest import file_sha256

    console.print(f"manifest hash (SHA-256 of {party.data}, as run summaries show it): {file_sha256(party.data)}")
    if not summary.success:
        raise typer.Exit(code=1)


def _announce(config: Path, leave: bool, timeout: float) -> None:
    from components.core.protocol import Kind
    from party_agent.agent import PartyAgent, announce

    try:
        party = load_party_config(config)
        body = {} if leave else PartyAgent(party).profile()
        answer = announce(party, Kind.LEAVE if leave else Kind.REGISTER, body, timeout_s=timeout)
    except ConsortiaError as error:
        _fail(error)
    console.print(f"coordinator acknowledged: {answer}")
    if leave:
        console.print(
            "done: you left the federation; its coordinator refuses this key in every later run "
            "until its MLOps engineer re-admits you (`consortia readmit`)"
        )


@app.command()
def register(
    config: Annotated[Path, typer.Option(help="party.yaml")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the coordinator.")] = 30.0,
) -> None:
    """Send your profile (name, key, resources, dataset manifest; never rows) to the coordinator's registry."""
    _announce(config, leave=False, timeout=timeout)


@app.command()
def leave(
    config: Annotated[Path, typer.Option(help="party.yaml")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the coordinator.")] = 30.0,
) -> None:
    """Leave the federation: the coordinator deletes your profile and key and keeps only anonymous statistics."""
    _announce(config, leave=True, timeout=timeout)


@app.command()
def run(
    config: Annotated[Path, typer.Option(help="party.yaml")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Join the coordinator and serve training requests until stopped (Ctrl-C)."""
    configure_logging(logging.DEBUG if verbose else logging.INFO, stream=sys.stderr)
    from party_agent.agent import PartyAgent

    try:
        agent = PartyAgent(load_party_config(config))
    except ConsortiaError as error:
        _fail(error)
    agent.run()


if __name__ == "__main__":
    app()

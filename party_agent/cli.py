"""``party-agent``: the data owner's command line (init, check, run)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.core.config import dump_yaml
from components.core.errors import ConfigError, ConsortiaError, ContractError
from components.core.policy import PartyPolicy
from components.run.logs import configure_logging
from party_agent.audit_cli import audit_app
from party_agent.plans_cli import approve, deny, requests

if TYPE_CHECKING:
    from party_agent.config import PartyConfig

app = typer.Typer(
    help="Run a Consortia party next to your data. Rows never leave this machine.",
    no_args_is_help=True,
)
console = Console(stderr=True)
for command in (requests, approve, deny):
    app.command()(command)
app.add_typer(audit_app, name="audit")


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}", soft_wrap=True)  # one line, however narrow the terminal
    raise typer.Exit(code=2)


_INIT_OPTIONS = {"name": "--name", "data": "--data", "coordinator": "--coordinator"}


def _init_config(
    name: str, data: Path, contract: str, coordinator: str, coordinator_key: str, folder: Path
) -> PartyConfig:
    """The party config ``init`` would write, every argument checked first (one ``ConfigError`` line each)."""
    from pydantic import ValidationError

    from components.adapters.contracts import load_contract
    from components.adapters.transport import check_public_key, keypair_paths
    from party_agent.config import PartyConfig

    check_public_key(coordinator_key, "--coordinator-key")
    if not data.is_file():
        raise ConfigError(f"--data {data}: no such file")
    try:
        load_contract(contract)
    except ConsortiaError as error:
        raise ConfigError(f"--contract: {error}") from None
    if not coordinator.startswith(("tcp://", "ipc://")):
        raise ConfigError(f"--coordinator {coordinator!r}: expected an address like tcp://host:5555")
    try:
        return PartyConfig(
            name=name,
            data=data.resolve(),
            contract=contract,
            coordinator=coordinator,
            coordinator_public_key=coordinator_key,
            secret_key_file=keypair_paths(folder / "keys", name)[1],
            audit_log=folder / "audit.jsonl",
            policy=folder / "policy.yaml",
            validation_cache=folder / "validations",
        )
    except ValidationError as error:
        first = error.errors()[0]
        option = _INIT_OPTIONS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise ConfigError(f"{option}: {first['msg']}") from None


@app.command()
def init(
    name: Annotated[str, typer.Option(help="This party's name, as the federation config lists it.")],
    data: Annotated[Path, typer.Option(help="The CSV with your rows (stays here).")],
    contract: Annotated[str, typer.Option(help="Data contract name, e.g. breast_cancer.")],
    coordinator_key: Annotated[
        str, typer.Option(help="The coordinator's CURVE public key (Z85, 40 chars), in single quotes.")
    ],
    coordinator: Annotated[str, typer.Option(help="Coordinator address.")] = "tcp://127.0.0.1:5555",
    out: Annotated[Path | None, typer.Option(help="Folder for party.yaml and keys (default: next to the CSV).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing party.yaml and key pair.")] = False,
) -> None:
    """Write party.yaml and a CURVE key pair next to your data; prints the public key to share.
    Every argument is checked before anything is written; existing keys are kept unless --force."""
    from components.adapters.transport import keypair_paths, read_public_key, write_keypair  # zmq: not for --help

    folder = (out or data.resolve().parent).resolve()
    try:
        config = _init_config(name, data, contract, coordinator, coordinator_key, folder)
        existing = [p for p in (*keypair_paths(folder / "keys", name), folder / "party.yaml") if p.exists()]
        if existing and not force:
            raise ConfigError(f"{existing[0]} exists: keeping it (pass --force to replace the party's config and keys)")
        public_path, _ = write_keypair(folder / "keys", name, overwrite=force)
        if force or not config.policy.exists():  # an owner's own policy is never replaced silently
            dump_yaml(PartyPolicy(coordinators=[coordinator_key]), config.policy)
    except ConsortiaError as error:
        _fail(error)
    path = dump_yaml(config, folder / "party.yaml")
    public = read_public_key(public_path)
    console.print(
        f"wrote {path}\nyour public key (give it to the federation's MLOps engineer): {public}", soft_wrap=True
    )
    typer.echo(public)


@app.command()
def check(config: Annotated[Path, typer.Option(help="party.yaml")]) -> None:
    """Check your CSV against its data contract locally: a verdict first, failures before passes; with a
    validation_cache, the summary is kept and `run` reuses it while neither the CSV nor the contract changes.
    Exit code 1 when the data fails the contract, 2 when the config or contract cannot be read."""
    from components.adapters.contracts import load_contract, read_dataset, validate_dataset
    from party_agent.config import load_party_config

    try:
        party = load_party_config(config)
        contract = load_contract(party.contract, party.contract_version)
    except ConsortiaError as error:
        _fail(error)
    try:
        summary = validate_dataset(read_dataset(party.data, contract), contract)
    except ContractError as error:  # the rows cannot be read as the contract needs: the data fails it
        console.print(f"[red]FAILED[/red] {party.name} against {contract.ref}: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    outcomes = sorted(summary.outcomes, key=lambda outcome: outcome.success)  # failures first
    failed = sum(not outcome.success for outcome in outcomes)
    verdict = (
        f"passed: {len(outcomes)}/{len(outcomes)}"
        if summary.success
        else f"[red]FAILED[/red]: {failed} of {len(outcomes)}, see below"
    )
    output = Console()
    output.print(f"{party.name} against {contract.ref}, {summary.row_count} rows: {verdict}")
    table = Table(title=f"{party.name}: {contract.ref}, {summary.row_count} rows")
    table.add_column("expectation")
    table.add_column("column")
    table.add_column("result")
    for outcome in outcomes:
        table.add_row(
            outcome.expectation,
            outcome.column or "",
            "pass" if outcome.success else "[red]FAIL[/red]",
        )
    output.print(table)
    from components.adapters.manifest import file_sha256
    from party_agent.signoff import keep_summary, summary_path

    data_hash = file_sha256(party.data)
    console.print(f"manifest hash (SHA-256 of {party.data}, as run summaries show it): {data_hash}")
    kept = summary_path(party.validation_cache, data_hash, contract.content_hash)
    keep_summary(kept, summary)
    if kept is not None:
        console.print(f"signed off in {kept}: `party-agent run` reuses it while the CSV and the contract are unchanged")
    if not summary.success:
        raise typer.Exit(code=1)


def _announce(config: Path, leave: bool, timeout: float) -> None:
    from components.core.protocol import Kind
    from party_agent.agent import PartyAgent, announce
    from party_agent.config import load_party_config

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
    from party_agent.config import load_party_config

    try:
        PartyAgent(load_party_config(config)).run()
    except ConsortiaError as error:
        _fail(error)


if __name__ == "__main__":
    app()

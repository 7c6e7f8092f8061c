"""``consortia contract``: draft a data contract from a sample CSV (``init``) and read one (``show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.core.contract import Contract
from components.core.errors import ContractError

contract_app = typer.Typer(help="Data contracts: draft one from a sample CSV, or show one.", no_args_is_help=True)
console = Console()
TASKS = ("auto", "binary", "multiclass", "regression")
_SHOWN_CLASSES = 12


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=1)


def _shape(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        shape = []
    if not shape or any(d < 1 for d in shape):
        _fail(f"--input-shape {text!r}: give positive sizes separated by commas, e.g. 1,8,8")
    return shape


@contract_app.command("init")
def init(
    sample: Annotated[Path, typer.Option("--from", help="Sample (or synthetic) CSV with the columns and labels.")],
    target: Annotated[str, typer.Option(help="The label (or value to predict) column.")],
    name: Annotated[str, typer.Option(help="Contract name, e.g. credit_scores.")],
    task: Annotated[str, typer.Option(help="auto, binary, multiclass or regression.")] = "auto",
    margin: Annotated[
        float, typer.Option(help="Widen each numeric range by this fraction of its observed span, each side.")
    ] = 0.1,
    version: Annotated[int, typer.Option(min=1, help="Version to write; an existing one is never overwritten.")] = 1,
    input_shape: Annotated[
        str | None, typer.Option(help="Each row as this shape, e.g. 1,8,8 (its product = the number of features).")
    ] = None,
    min_rows: Annotated[int, typer.Option(min=1, help="Rows a party's dataset must have at least.")] = 10,
    exclude: Annotated[
        list[str] | None, typer.Option(help="A column of the sample that is not a feature (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the data is (default: how it was drafted).")] = None,
    check: Annotated[bool, typer.Option(help="Validate the sample against the written contract.")] = True,
    out: Annotated[Path | None, typer.Option(help="Contracts folder (default: the one parties load).")] = None,
) -> None:
    """Write NAME/vN/schema.json and suite.json from a sample CSV: columns, dtypes, not-null, ranges, labels, rows.

    Feature columns must be numeric (encode categories as numbers first, or --exclude them). Task auto: a text
    target, or whole numbers with at most 20 distinct values, is classification; other numbers are regression."""
    from components.adapters.contracts import (
        CONTRACTS_ROOT,
        draft_contract,
        load_contract,
        read_dataset,
        validate_dataset,
        write_contract,
    )

    if task not in TASKS:
        _fail(f"unknown task {task!r}; choose {', '.join(TASKS)}")
    root = out or CONTRACTS_ROOT
    try:
        draft = draft_contract(
            sample,
            name,
            target,
            version=version,
            task=task,  # type: ignore[arg-type]
            margin=margin,
            input_shape=_shape(input_shape),
            min_rows=min_rows,
            exclude=exclude or [],
            description=description,
        )
        folder = write_contract(draft.contract, root)
        written = load_contract(name, version, root=root)  # what parties will read back
        summary = validate_dataset(read_dataset(sample, written), written) if check else None
    except ContractError as error:
        _fail(str(error))
    show_contract(written, folder)
    for note in draft.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)
    if summary is not None and summary.success:
        console.print(f"the sample passes all {len(summary.outcomes)} expectations of {written.ref}", soft_wrap=True)
    elif summary is not None:
        console.print(f"[yellow]note:[/yellow] the sample fails {escape(', '.join(summary.failed))}", soft_wrap=True)
    console.print(escape(f"wrote {folder / 'schema.json'} and {folder / 'suite.json'}"), soft_wrap=True)


@contract_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Contract name.")],
    version: Annotated[int | None, typer.Option(help="Version (default: the latest).")] = None,
    contracts: Annotated[
        Path | None, typer.Option("--contracts", "--out", help="Contracts folder (default: the one parties load).")
    ] = None,
) -> None:
    """Print a contract: its columns with dtype, range or labels and not-null; task, classes and content hash."""
    from components.adapters.contracts import CONTRACTS_ROOT, load_contract

    root = contracts or CONTRACTS_ROOT
    try:
        contract = load_contract(name, version, root=root)
    except ContractError as error:
        _fail(str(error))
    show_contract(contract, root / contract.name / f"v{contract.version}")


def _labels(values: list[int | str] | list[str]) -> str:
    shown = ", ".join(map(str, values[:_SHOWN_CLASSES]))
    return shown + (f" … ({len(values)} in all)" if len(values) > _SHOWN_CLASSES else "")


def _number(value: float | int | None) -> str:
    return "" if value is None else f"{value:g}"


def show_contract(contract: Contract, folder: Path) -> None:
    """The contract as a rich table of columns and a few lines about task, classes and hash."""
    from components.adapters.contracts import minimum_rows, suite_bounds

    bounds = suite_bounds(contract)
    table = Table(title=f"{contract.ref} ({folder})")
    for column in ("column", "role", "dtype", "range / labels", "not null"):
        table.add_column(column)
    for column in contract.columns:
        checks = bounds[column]
        if "in_set" in checks:
            allowed = _labels(checks["in_set"])
        elif "range" in checks:
            low, high = checks["range"]
            allowed = f"[{_number(low)}, {_number(high)}]"
        else:
            allowed = ""
        table.add_row(
            escape(column),
            "target" if column == contract.target else "feature",
            contract.dtypes[column],
            escape(allowed),
            "yes" if checks["not_null"] else "no",
        )
    console.print(table)
    lines = [f"task        {contract.task}"]
    if contract.is_classification:
        indexed = [f"{i}={label}" for i, label in enumerate(contract.classes)]
        lines.append(f"classes     {_labels(indexed)}  (class index = position)")
    lines += [
        f"features    {contract.n_features}" + (f" as shape {contract.input_shape}" if contract.input_shape else ""),
        f"min rows    {minimum_rows(contract) or ''}",
        f"hash        {contract.content_hash}",
    ]
    if contract.description:
        lines.append(f"about       {contract.description}")
    for line in lines:
        console.print(escape(line), soft_wrap=True)

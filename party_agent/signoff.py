"""A party's signed-off validation summary: its rows (the data file's SHA-256) against one contract (the
contract's content hash), validated once, by ``party-agent check`` or at an agent's start, and reused while
neither changes (``validation_cache`` in party.yaml)."""

from __future__ import annotations

from pathlib import Path

from components.adapters.checkpoints import write_text_atomically
from components.core.contract import ValidationSummary


def summary_path(cache: Path | None, data_hash: str, contract_hash: str) -> Path | None:
    """Where the summary of these rows against this contract is kept (None: no cache configured)."""
    return None if cache is None else cache / f"{data_hash}-{contract_hash}.json"


def read_summary(path: Path | None) -> ValidationSummary | None:
    """The signed-off summary at ``path``, if one was kept."""
    if path is None or not path.exists():
        return None
    return ValidationSummary.model_validate_json(path.read_text())


def keep_summary(path: Path | None, summary: ValidationSummary) -> None:
    if path is not None:
        write_text_atomically(path, summary.model_dump_json())

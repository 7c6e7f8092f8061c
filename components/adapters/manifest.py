"""Dataset manifests: what a party may say about its data (hash, shape, schema), never rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from pydantic import BaseModel


class DatasetManifest(BaseModel):
    party: str
    content_hash: str  # sha256 of the file's bytes: the manifest hash the CLI, summary, dashboard and audit show
    rows: int
    columns: dict[str, str]  # the contract's columns -> dtype (the frame holds no other column)
    contract: str
    contract_version: int

    @property
    def key(self) -> str:
        """Short, stable identifier of this manifest (its own hash)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(
    party: str, path: Path, frame: pd.DataFrame, contract: str, contract_version: int
) -> DatasetManifest:
    return DatasetManifest(
        party=party,
        content_hash=file_sha256(path),
        rows=len(frame),
        columns={name: str(dtype) for name, dtype in frame.dtypes.items()},
        contract=contract,
        contract_version=contract_version,
    )

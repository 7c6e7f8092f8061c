"""One manifest hash everywhere, the owner's own (SHA-256 of the data file); only the contract's columns leave."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from components.core.config import load_federation_config
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from party_agent.audit import read_entries
from party_agent.config import load_party_config
from tests.run_twins import twin_federation, twin_parties

EXTRA = "patient_surname_do_not_share"


def test_the_manifest_hash_is_the_files_sha256_everywhere_and_an_extra_column_never_leaves(tmp_path, caplog):
    federation = twin_federation(
        tmp_path / "ws", parties=2, rounds=1, round_timeout_s=60, party_updates="until_settled"
    )
    data = federation.layout.party_data["alpha"]
    frame = pd.read_csv(data)
    frame[EXTRA] = range(len(frame))
    frame.to_csv(data, index=False)
    owners_hash = hashlib.sha256(data.read_bytes()).hexdigest()  # what the owner recomputes (`sha256sum`)
    config = load_federation_config(federation.config_path)
    with caplog.at_level(logging.WARNING), twin_parties(federation):
        run = FederationRun(config, federation.workspace, "manifest", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    assert summary.status == "completed"
    assert summary.manifests["alpha"] == owners_hash
    assert federation.tracker.runs[summary.mlflow_run_id].tags["manifest.alpha"] == owners_hash
    alpha = load_party_config(federation.layout.party_configs["alpha"])
    validations = [e for e in read_entries(alpha.audit_log) if e["detail"].get("kind") == "validation"]
    assert [e["detail"]["manifest"] for e in validations] == [owners_hash]
    assert f"ignoring 1 column(s) breast_cancer@v1 does not name: {EXTRA}" in caplog.text  # told locally
    stored = federation.store.tables["validations"]
    manifest = next(r["manifest"] for r in stored if r["party"] == "alpha")
    assert list(manifest["columns"]) == list(frame.columns.drop(EXTRA))
    left = [
        summary.model_dump_json(),
        str(federation.store.tables),
        alpha.audit_log.read_text(),
        alpha.wire_log.read_bytes().decode("latin-1"),
    ]
    assert not any(EXTRA in text for text in left)  # its name never left the party
    # retention: once the run completed and was settled, the per-party updates are gone, the global models stay
    checkpoints = federation.workspace.checkpoints / "manifest"
    assert not (checkpoints / "updates").exists() and list(checkpoints.glob("*global*"))

"""Lineage of registered versions: the tags that say what produced a model, and the model card attached to it.

A whole run over the twins checks every tag and number against the run's own records; the integration test
checks a real demo run's version in a real MLflow registry.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib.metadata import version as installed_version
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from components.adapters.checkpoints import RunCheckpoints
from components.adapters.code_version import code_version
from components.adapters.contracts import load_contract
from components.adapters.tracking import ModelRegistry
from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.run import lineage
from components.run.federation import FederationRun
from components.run.lineage import ModelCard, party_evaluation
from components.run.summary import RunSummary
from flows.federation import PLAIN_STEPS, drive
from tests.dashboard_workspace import demo_workspace, hand_made_card
from tests.run_twins import twin_federation, twin_parties

CHECKOUT = Path(__file__).resolve().parents[1]
DP = {"name": "dp", "options": {"inner": "fedavg", "clip_norm": 5.0, "noise_multiplier": 1.0}}


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def _assert_lineage_matches(tags: dict[str, str], card: ModelCard, summary: RunSummary, frozen_config: dict) -> None:
    """Tags and card of a version against the run's summary and the config frozen in its checkpoints."""
    contract = load_contract(summary.config["contract"]["name"], summary.config["contract"]["version"])
    assert tags[lineage.RUN_ID] == summary.run_id
    assert {p: tags[f"{lineage.MANIFEST}{p}"] for p in summary.manifests} == summary.manifests
    md5s = {p: tags[f"{lineage.MANIFEST_MD5}{p}"] for p in summary.manifests}
    assert md5s == {p: summary.data_versions[f"manifests/{summary.run_id}.json"] for p in summary.manifests}
    assert all(len(md5) == 32 for md5 in md5s.values())
    lines = "".join(f"{path} {md5}\n" for path, md5 in sorted(summary.data_versions.items()))
    assert tags[lineage.DVC_REVISION] == hashlib.sha256(lines.encode()).hexdigest()
    assert (tags["consortia.contract.name"], tags["consortia.contract.version"]) == (
        contract.name,
        str(contract.version),
    )
    assert tags["consortia.contract.hash"] == contract.content_hash
    canonical = json.dumps(frozen_config, sort_keys=True, separators=(",", ":"))
    assert tags[lineage.CONFIG_SHA256] == hashlib.sha256(canonical.encode()).hexdigest()
    assert (tags[lineage.CODE_SOURCE], tags[lineage.CODE_VERSION]) == ("git", _git(CHECKOUT, "rev-parse", "HEAD"))
    assert tags[lineage.MODEL_CARD] == lineage.CARD_JSON
    # the card's numbers are the summary's
    assert card.run_id == summary.run_id and card.mlflow_run_id == summary.mlflow_run_id
    assert card.metrics == summary.final_metrics.present()
    assert card.rounds_completed == len(summary.rounds) and card.rounds_planned == summary.config["rounds"]
    assert card.parties == sorted({p for row in summary.rounds for p in row.participants})
    assert card.contributions == summary.contributions and card.rewards == summary.rewards
    assert {d.party: d.rows_validated for d in card.data} == {p: v["row_count"] for p, v in summary.validation.items()}
    assert {d.party: d.rows_claimed for d in card.data} == summary.claimed_rows
    assert (card.party_metrics, card.party_examples, card.fairness_gaps) == party_evaluation(summary)
    ours = {k: v for k, v in tags.items() if k.startswith(("consortia.", "manifest.")) and k != lineage.MODEL_CARD}
    assert card.lineage == ours  # the version's other tags are the promotion's (metric, decision, gates)


def test_every_registered_version_carries_its_lineage_and_a_card_with_the_summarys_numbers(tmp_path):
    federation = twin_federation(  # generous deadlines: what is tested is the record, not the timing
        tmp_path / "ws", parties=3, rounds=2, strategy=DP, round_timeout_s=120, heartbeat_timeout_s=60
    )
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "lineage-run", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    (version,) = federation.edges.registry.versions(config.promotion.model_name)
    card = ModelCard.model_validate(federation.tracker.runs[summary.mlflow_run_id].artifacts[lineage.CARD_JSON])
    frozen = json.loads(RunCheckpoints(federation.workspace.checkpoints, "lineage-run").config.read_text())

    _assert_lineage_matches(version.tags, card, summary, frozen)
    # the claimed rows are the parties' own files' rows; the DVC md5s are the metadata twin's
    assert summary.claimed_rows == {p: len(pd.read_csv(path)) for p, path in federation.layout.party_data.items()}
    tracked = {Path(p).name: md5 for p, md5 in federation.edges.metadata.tracked().items()}
    assert {d.party: d.manifest_md5 for d in card.data} == {
        p: tracked[f"{summary.run_id}.json"] for p in summary.manifests
    }
    # the privacy settings are the run's: DP over RDP, epsilon as the last round reported it
    assert card.privacy.dp_mode == "central" and card.privacy.accountant == "rdp"
    assert card.privacy.epsilon == summary.rounds[-1].epsilon > 0
    assert card.privacy.delta == config.privacy_delta and card.privacy.noise_multiplier == 1.0
    assert card.privacy.secure_aggregation is False
    # the card is the version's description, and the Markdown beside the JSON on the run
    markdown = federation.tracker.runs[summary.mlflow_run_id].artifacts[lineage.CARD_MARKDOWN]
    assert version.description == markdown == card.markdown() == card.description()
    assert f"| alpha | {summary.claimed_rows['alpha']} | {summary.validation['alpha']['row_count']} | passed |" in (
        markdown
    )
    per_party = (
        "Fairness gap (the worst party" if card.party_metrics else f"Candidate {lineage.NOT_PER_PARTY}: no fairness"
    )
    assert per_party in markdown  # the run's own evaluation decides which (this branch: none per party)


def test_the_card_renders_per_party_metrics_and_the_fairness_gap_when_the_run_has_them():
    # the summary's federated evaluation, in its shape: parties (rows, metrics) and a gap per metric
    evaluated = SimpleNamespace(
        evaluation=SimpleNamespace(
            parties={
                "beta": SimpleNamespace(num_examples=50, metrics={"accuracy": 0.6, "loss": 0.7}),
                "alpha": SimpleNamespace(num_examples=100, metrics={"accuracy": 0.9, "loss": 0.3}),
            },
            gaps={
                "accuracy": SimpleNamespace(weighted_mean=0.8, worst_party="beta", worst_value=0.6, gap=0.2),
            },
        )
    )
    metrics, examples, gaps = party_evaluation(evaluated)
    card = hand_made_card(party_metrics=metrics, party_examples=examples, fairness_gaps=gaps)

    markdown = card.markdown()

    assert examples == {"beta": 50, "alpha": 100} and gaps["accuracy"].gap == 0.2
    assert "| party | rows | accuracy | loss |" in markdown
    assert markdown.index("| alpha | 100 | 0.9 | 0.3 |") < markdown.index("| beta | 50 | 0.6 | 0.7 |")
    assert "| accuracy | 0.2 | beta | 0.6 | 0.8 |" in markdown and lineage.NOT_PER_PARTY not in markdown
    assert ModelCard.model_validate_json(card.model_dump_json()) == card  # the JSON artifact reads back the same
    assert party_evaluation(SimpleNamespace(evaluation=None)) == ({}, {}, {})


def test_a_card_too_long_for_the_registrys_description_is_cut_at_a_line_and_says_where_the_whole_is():
    parties = [
        lineage.PartyData(party=f"party-{i:02d}", manifest_sha256="f" * 64, manifest_md5="e" * 32) for i in range(40)
    ]
    card = hand_made_card(data=parties)

    description, markdown = card.description(), card.markdown()

    assert len(markdown) > lineage.DESCRIPTION_LIMIT >= len(description)
    cut, note = description.split("\n\n(cut at 5000 characters")
    assert markdown.startswith(cut + "\n") and note == ": the whole card is the run's `model_card.md`)\n"


def test_code_version_is_the_checkouts_commit_marked_dirty_or_the_package_version(tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = code_version(repo)
    (repo / "code.py").write_text("x = 2\n")
    code_version.cache_clear()
    dirty = code_version(repo)

    assert (clean.source, clean.version, clean.dirty) == ("git", _git(repo, "rev-parse", "HEAD"), False)
    assert (dirty.version, dirty.dirty) == (clean.version, True)
    assert code_version(repo / "..").model_dump() == {  # not the top of a work tree: the installed package
        "source": "package",
        "version": installed_version("consortia"),
        "dirty": False,
    }


# ---- a real federation run, a real MLflow registry ----


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, RunSummary]:
    return demo_workspace(tmp_path_factory)


@pytest.mark.integration
@pytest.mark.timeout(600)  # the first test of a session to ask for the demo workspace runs the demo: minutes
def test_a_real_runs_registered_version_has_its_lineage_tags_and_card(demo):
    root, summary = demo
    workspace = Workspace.at(root)
    registry = ModelRegistry(workspace.tracking_uri)

    (version,) = registry.versions(summary.promotion.model_name)
    card = ModelCard.model_validate(registry.run_artifact(version, lineage.CARD_JSON))
    frozen = json.loads(RunCheckpoints(workspace.checkpoints, summary.run_id).config.read_text())

    assert version.version == summary.promotion.version and version.run_id == summary.mlflow_run_id
    _assert_lineage_matches(version.tags, card, summary, frozen)
    assert version.description == card.description() == card.markdown()  # a demo card fits
    dvc_file = workspace.metadata_repo / "manifests" / f"{summary.run_id}.json.dvc"
    assert f"md5: {card.data[0].manifest_md5}" in dvc_file.read_text()  # DVC's own record of the manifest

"""Lineage of a registered model version: the tags that say what produced it, and its model card.

Tags (stable: ``consortia reproduce`` and the dashboard read them; documented in the README):

- ``consortia.run_id``: the Consortia run; ``manifest.PARTY``: SHA-256 of the party's data file;
- ``consortia.data.manifest_md5.PARTY``: DVC md5 of the run's manifests file (``manifests/RUN_ID.json``) that
  holds the party's manifest;
- ``consortia.data.dvc_revision``: SHA-256 over the run's DVC-tracked files, ``path md5`` lines sorted;
- ``consortia.contract``, ``.name``, ``.version``, ``.hash`` (content hash), ``.dvc_md5`` (DVC md5 of its copy);
- ``consortia.config.sha256``: SHA-256 of the frozen config (``config_sha256``);
- ``consortia.code.version``, ``.source`` (``git``: a commit, ``package``: a version), ``.dirty``;
- ``consortia.model_card``: the card's JSON artifact on the version's MLflow run (``model_card.md`` beside it).

The card holds counts, hashes, metrics and settings, never a data row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from components.adapters.code_version import CodeVersion
from components.core.contract import Contract
from components.core.strategies.base import PrivacyAccount
from components.run.summary import RoundMetrics, RunSummary

RUN_ID = "consortia.run_id"
MANIFEST = "manifest."
MANIFEST_MD5 = "consortia.data.manifest_md5."
DVC_REVISION = "consortia.data.dvc_revision"
CONTRACT = "consortia.contract"
CONFIG_SHA256 = "consortia.config.sha256"
CODE_VERSION = "consortia.code.version"
CODE_SOURCE = "consortia.code.source"
CODE_DIRTY = "consortia.code.dirty"
MODEL_CARD = "consortia.model_card"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
NOT_PER_PARTY = "not evaluated per party"
DESCRIPTION_LIMIT = 5000  # characters of a version's description MLflow's SQL stores keep (String(5000))


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of a config as JSON (``model_dump(mode="json")``) with sorted keys and no spaces."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def dvc_revision(data_versions: Mapping[str, str]) -> str:
    """SHA-256 over ``path md5`` lines (sorted) of DVC-tracked files: one name for exactly these versions."""
    lines = "".join(f"{path} {md5}\n" for path, md5 in sorted(data_versions.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


class PartyData(BaseModel):
    """One party's data as the run used it: hashes and row counts, never values."""

    party: str
    manifest_sha256: str
    manifest_md5: str | None = None
    rows_claimed: int | None = None  # what its manifest states
    rows_validated: int | None = None  # what its contract check counted
    validation_passed: bool | None = None


class ContractCard(BaseModel):
    name: str
    version: int
    content_hash: str
    dvc_md5: str | None = None


class PrivacyCard(BaseModel):
    """Differential privacy (``dp``: None without it) and secure aggregation settings of the run."""

    dp_mode: str | None = None  # central | local
    epsilon: float | None = None  # spent by the end of the last round, at ``delta``
    delta: float | None = None
    epsilon_budget: float | None = None  # the tightest budget a party declared
    accountant: str | None = None
    noise_multiplier: float | None = None
    clip_norm: float | None = None
    secure_aggregation: bool = False
    secure_aggregation_threshold: float | None = None


class FairnessGapCard(BaseModel):
    """One metric across parties: the worst party against the example-weighted mean (larger is worse)."""

    weighted_mean: float
    worst_party: str
    worst_value: float
    gap: float


class ModelCard(BaseModel):
    """What a registered version is and where it came from; the same facts render as Markdown."""

    model_name: str
    run_id: str
    mlflow_run_id: str | None = None
    federation: str
    task: str
    model: dict[str, Any]
    strategy: dict[str, Any]
    training: dict[str, Any]
    rounds_planned: int
    rounds_completed: int
    stopped_early: str | None = None
    parties: list[str]
    contract: ContractCard
    data: list[PartyData]
    metrics: dict[str, float]
    metrics_source: str  # the coordinator's holdout, or the parties' own rows
    party_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)  # the candidate on each party's rows
    party_examples: dict[str, int] = Field(default_factory=dict)  # the rows each party evaluated it on
    fairness_gaps: dict[str, FairnessGapCard] = Field(default_factory=dict)  # metric -> worst party vs weighted mean
    valuation_method: str
    contributions: dict[str, float] = Field(default_factory=dict)
    rewards: dict[str, float] = Field(default_factory=dict)
    privacy: PrivacyCard
    lineage: dict[str, str]

    def markdown(self) -> str:
        """The card as Markdown (the registered version's description and ``model_card.md``)."""
        rows = self.data
        out = [
            f"# Model card: {self.model_name}",
            "",
            f"Run `{self.run_id}` of federation `{self.federation}` (MLflow run `{self.mlflow_run_id}`): a {self.task} "
            f"{self.model.get('kind', '')} model trained with `{self.strategy.get('name')}` for "
            f"{self.rounds_completed} of {self.rounds_planned} rounds by {len(self.parties)} parties "
            f"({', '.join(self.parties)}).",
        ]
        if self.stopped_early:
            out.append(f"Training stopped early: {self.stopped_early}")
        c = self.contract
        out += ["", "## Data", "", f"Contract `{c.name}` v{c.version}, content hash `{c.content_hash}`.", ""]
        out += _table(
            ["party", "rows claimed", "rows validated", "validation", "manifest sha256", "manifest DVC md5"],
            [
                [
                    d.party,
                    _text(d.rows_claimed),
                    _text(d.rows_validated),
                    {True: "passed", False: "FAILED", None: ""}[d.validation_passed],
                    f"`{d.manifest_sha256}`",
                    f"`{d.manifest_md5 or ''}`",
                ]
                for d in rows
            ],
        )
        out += ["", f"## Metrics ({self.metrics_source})", ""]
        out += _table(["metric", "value"], [[name, _text(value)] for name, value in self.metrics.items()])
        out += ["", "## Per-party metrics", ""]
        if self.party_metrics:
            names = sorted({name for values in self.party_metrics.values() for name in values})
            out += _table(
                ["party", "rows", *names],
                [
                    [p, _text(self.party_examples.get(p)), *(_text(v.get(n)) for n in names)]
                    for p, v in sorted(self.party_metrics.items())
                ],
            )
            out += ["", "Fairness gap (the worst party against the example-weighted mean):", ""]
            out += _table(
                ["metric", "gap", "worst party", "worst value", "weighted mean"],
                [
                    [m, _text(g.gap), g.worst_party, _text(g.worst_value), _text(g.weighted_mean)]
                    for m, g in sorted(self.fairness_gaps.items())
                ],
            )
        else:
            out.append(f"Candidate {NOT_PER_PARTY}: no fairness gap.")
        out += ["", f"## Contributions and rewards ({self.valuation_method})", ""]
        parties = sorted(set(self.contributions) | set(self.rewards))
        out += _table(
            ["party", "contribution", "reward"],
            [[p, _text(self.contributions.get(p)), _text(self.rewards.get(p))] for p in parties],
        )
        pr = self.privacy
        dp = (
            f"{pr.dp_mode} DP, epsilon {_text(pr.epsilon)} at delta {_text(pr.delta)} ({pr.accountant} accountant), "
            f"noise multiplier {_text(pr.noise_multiplier)}, clip norm {_text(pr.clip_norm)}"
            + (f", budget {_text(pr.epsilon_budget)}" if pr.epsilon_budget is not None else "")
            if pr.dp_mode
            else "no differential privacy"
        )
        secure = f"on (threshold {_text(pr.secure_aggregation_threshold)})" if pr.secure_aggregation else "off"
        out += ["", "## Privacy", "", f"- {dp}", f"- secure aggregation: {secure}"]
        out += ["", "## Strategy and training", "", f"- strategy: `{json.dumps(self.strategy, sort_keys=True)}`"]
        out += [f"- model: `{json.dumps(self.model, sort_keys=True)}`"]
        out += [f"- training: `{json.dumps(self.training, sort_keys=True)}`"]
        out += ["", "## Lineage", ""]
        out += _table(["tag", "value"], [[k, f"`{v}`"] for k, v in sorted(self.lineage.items())])
        return "\n".join(out) + "\n"

    def description(self) -> str:
        """The Markdown, cut at a line to fit the registry's description (the full card is ``model_card.md``)."""
        full = self.markdown()
        if len(full) <= DESCRIPTION_LIMIT:
            return full
        note = f"\n\n(cut at {DESCRIPTION_LIMIT} characters: the whole card is the run's `{CARD_MARKDOWN}`)\n"
        return full[: DESCRIPTION_LIMIT - len(note)].rsplit("\n", 1)[0] + note


class Lineage(BaseModel):
    """The registered version's lineage tags and its card."""

    tags: dict[str, str]
    card: ModelCard


def build_lineage(
    summary: RunSummary,
    model_name: str,
    contract: Contract,
    metrics: RoundMetrics,
    code: CodeVersion,
    privacy: PrivacyAccount | None,
    delta: float,
    epsilon_budget: float | None = None,
) -> Lineage:
    """Tags and card of the model a run is about to register, from its summary (rounds, settlement done)."""
    config = summary.config
    contract_md5 = summary.data_versions.get(f"contracts/{contract.name}_v{contract.version}.json")
    manifests_md5 = summary.data_versions.get(f"manifests/{summary.run_id}.json")  # every party's, in one file
    tags = {
        RUN_ID: summary.run_id,
        **{MANIFEST + party: digest for party, digest in summary.manifests.items()},
        **({MANIFEST_MD5 + party: manifests_md5 for party in summary.manifests} if manifests_md5 else {}),
        DVC_REVISION: dvc_revision(summary.data_versions),
        CONTRACT: contract.ref,
        f"{CONTRACT}.name": contract.name,
        f"{CONTRACT}.version": str(contract.version),
        f"{CONTRACT}.hash": contract.content_hash,
        **({f"{CONTRACT}.dvc_md5": contract_md5} if contract_md5 else {}),
        CONFIG_SHA256: config_sha256(config),
        CODE_VERSION: code.version,
        CODE_SOURCE: code.source,
        CODE_DIRTY: str(code.dirty).lower(),
        MODEL_CARD: CARD_JSON,
    }
    party_metrics, party_examples, fairness_gaps = party_evaluation(summary)
    last_epsilon = summary.rounds[-1].epsilon if summary.rounds else None
    secure = config.get("secure_aggregation", {})
    card = ModelCard(
        model_name=model_name,
        run_id=summary.run_id,
        mlflow_run_id=summary.mlflow_run_id,
        federation=config["name"],
        task=contract.task,
        model=config["model"],
        strategy=config["strategy"],
        training=config["training"],
        rounds_planned=config["rounds"],
        rounds_completed=len(summary.rounds),
        stopped_early=summary.stopped_early,
        parties=sorted({p for row in summary.rounds for p in row.participants}),
        contract=ContractCard(
            name=contract.name, version=contract.version, content_hash=contract.content_hash, dvc_md5=contract_md5
        ),
        data=[
            PartyData(
                party=party,
                manifest_sha256=digest,
                manifest_md5=manifests_md5,
                rows_claimed=summary.claimed_rows.get(party),
                rows_validated=summary.validation.get(party, {}).get("row_count"),
                validation_passed=summary.validation.get(party, {}).get("success"),
            )
            for party, digest in sorted(summary.manifests.items())
        ],
        metrics=metrics.present(),
        metrics_source="the coordinator's holdout" if config.get("holdout") else "the parties' own rows",
        party_metrics=party_metrics,
        party_examples=party_examples,
        fairness_gaps=fairness_gaps,
        valuation_method=summary.valuation_method,
        contributions=summary.contributions,
        rewards=summary.rewards,
        privacy=PrivacyCard(
            dp_mode=privacy.mode if privacy else None,
            epsilon=last_epsilon if privacy else None,
            delta=delta if privacy else None,
            epsilon_budget=epsilon_budget if privacy else None,
            accountant=privacy.accountant if privacy else None,
            noise_multiplier=privacy.noise_multiplier if privacy else None,
            clip_norm=privacy.clip_norm if privacy else None,
            secure_aggregation=bool(secure.get("enabled")),
            secure_aggregation_threshold=secure.get("threshold_fraction") if secure.get("enabled") else None,
        ),
        lineage={k: v for k, v in tags.items() if k != MODEL_CARD},
    )
    return Lineage(tags=tags, card=card)


def party_evaluation(
    summary: RunSummary,
) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, FairnessGapCard]]:
    """The candidate's metrics and rows per party and its fairness gaps, where the run evaluated it on the
    parties' own rows (all empty otherwise).

    Read from the summary's ``evaluation`` (federated evaluation: ``parties`` name -> ``num_examples`` and
    ``metrics``, ``gaps`` metric -> ``weighted_mean``, ``worst_party``, ``worst_value``, ``gap``).
    """
    evaluation = getattr(summary, "evaluation", None)
    if evaluation is None:
        return {}, {}, {}
    parties = evaluation.parties
    return (
        {p: dict(m.metrics) for p, m in parties.items()},
        {p: int(m.num_examples) for p, m in parties.items()},
        {
            metric: FairnessGapCard(
                weighted_mean=g.weighted_mean, worst_party=g.worst_party, worst_value=g.worst_value, gap=g.gap
            )
            for metric, g in evaluation.gaps.items()
        },
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]

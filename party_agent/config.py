"""Party config: what a data owner writes (or ``party-agent init`` writes for them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from components.core.config import load_yaml_model, resolve
from components.core.glm.disclosure import DisclosureRules
from components.core.protocol.bodies import PrivacyBudget
from components.core.splits import ValidationSplit


class CoordinatorAddress(BaseModel):
    """One more coordinator this party serves: where it listens and its CURVE public key."""

    model_config = ConfigDict(extra="forbid")

    address: str
    public_key: str = Field(min_length=40, max_length=40)


class PartyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    data: Path
    contract: str
    contract_version: int | None = None
    coordinator: str = "tcp://127.0.0.1:5555"
    coordinator_public_key: str = Field(min_length=40, max_length=40)
    secret_key_file: Path
    coordinators: list[CoordinatorAddress] = Field(
        default_factory=list,
        description="further coordinators served at the same time as `coordinator`, each with its own runs "
        "(the policy's max_concurrent_runs bounds how many runs are worked on at once; the rest wait their turn)",
    )
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    privacy_budget: PrivacyBudget | None = Field(
        default=None, description="Refuse to train in a run whose differential-privacy spend would exceed this."
    )
    disclosure: DisclosureRules = Field(
        default_factory=DisclosureRules,
        description="Refuse GLM sums and statistics that break these rules (components.core.glm.disclosure).",
    )
    validation: ValidationSplit | None = Field(
        default=None,
        description="the share of this party's rows held out of training and evaluated on, in every run "
        "(none: a run may ask for one in its plan; otherwise the party trains and evaluates on all its rows)",
    )
    policy: Path | None = Field(
        default=None,
        description="the owner's policy (policy.yaml): which runs this party serves; none = any plan is accepted",
    )
    requests_dir: Path | None = Field(
        default=None, description="run plans received, one JSON file each (default: requests/ next to the data)"
    )
    audit_log: Path | None = Field(
        default=None,
        description="the hash-chained JSON-lines log of plans, decisions and what left (`party-agent audit`)",
    )
    wire_log: Path | None = Field(default=None, description="also capture every byte sent to this file (forensics)")
    validation_cache: Path | None = Field(
        default=None,
        description="Folder of signed-off validation summaries, one per (data file, contract) content hash: "
        "while neither changes, the agent reuses the summary instead of validating its rows again.",
    )


def requests_folder(config: PartyConfig) -> Path:
    """Where this party keeps the run plans it received."""
    return config.requests_dir or config.data.parent / "requests"


def load_party_config(path: Path) -> PartyConfig:
    config: PartyConfig = load_yaml_model(path, PartyConfig)
    base = Path(path).resolve().parent
    config.data = resolve(config.data, base)
    config.secret_key_file = resolve(config.secret_key_file, base)
    config.audit_log = resolve(config.audit_log, base)
    config.validation_cache = resolve(config.validation_cache, base)
    config.wire_log = resolve(config.wire_log, base)
    config.policy = resolve(config.policy, base)
    config.requests_dir = resolve(config.requests_dir, base) or base / "requests"
    return config

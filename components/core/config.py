"""Federation config: what an MLOps engineer writes (YAML), typed and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.core.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingSpec(BaseModel):
    """Local optimisation settings sent with every training request."""

    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    proximal_mu: float = Field(default=0.0, ge=0)
    seed: int = 0


class ContractRef(_Strict):
    name: str
    version: int | None = None


class ModelConfig(_Strict):
    kind: str = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [32])
    seed: int = 0


class StrategyConfig(_Strict):
    name: str = "fedavg"
    options: dict[str, Any] = Field(default_factory=dict)


class CoordinatorConfig(_Strict):
    bind: str = "tcp://127.0.0.1:5555"
    secret_key_file: Path


class PartyEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    public_key: str = Field(min_length=40, max_length=40)


class ValuationConfig(_Strict):
    method: str = "loo"
    metric: Literal["loss", "accuracy", "roc_auc"] = Field(
        default="loss", description="coalition utility: held-out log-loss reduction (smooth) or accuracy/ROC AUC"
    )
    options: dict[str, Any] = Field(default_factory=dict)


SECURE_STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad")


class SecureAggregationConfig(_Strict):
    """Pairwise-masked updates: the coordinator only learns the sum of each round's updates."""

    enabled: bool = False
    threshold_fraction: float = Field(default=0.66, gt=0, le=1, description="share of parties needed to unmask")


class RewardConfig(_Strict):
    """How a run's reward pool is split: a floor for every clean participant, the rest by contribution."""

    pool: float = Field(default=100.0, ge=0)
    participation_floor: float = Field(default=0.1, ge=0, le=1)


class PromotionConfig(_Strict):
    model_name: str
    metric: str = "accuracy"
    higher_is_better: bool = True
    min_improvement: float = 0.0
    alias: str = "champion"


class FederationConfig(_Strict):
    """One federation: contract, model, strategy, rounds and the parties admitted by public key."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    contract: ContractRef
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    rounds: int = Field(default=10, ge=1)
    min_parties: int = Field(default=1, ge=1)
    fraction: float = Field(default=1.0, gt=0, le=1, description="share of online parties sampled per round")
    round_timeout_s: float = Field(default=120.0, gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0, description="silence after which a party is offline")
    join_timeout_s: float = Field(default=120.0, gt=0)
    holdout: Path | None = None
    coordinator: CoordinatorConfig
    parties: list[PartyEntry] = Field(min_length=1)
    valuation: ValuationConfig = Field(default_factory=ValuationConfig)
    secure_aggregation: SecureAggregationConfig = Field(default_factory=SecureAggregationConfig)
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    promotion: PromotionConfig
    privacy_delta: float = Field(default=1e-5, gt=0, lt=1, description="delta for epsilon reports without budgets")
    max_message_mb: int = Field(default=256, ge=1)
    max_update_norm: float | None = Field(
        default=None, gt=0, description="reject updates farther than this (L2) from the global model"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FederationConfig:
        names = [p.name for p in self.parties]
        if len(set(names)) != len(names):
            raise ValueError("party names must be unique")
        keys = [p.public_key for p in self.parties]
        if len(set(keys)) != len(keys):
            raise ValueError("party public keys must be unique")
        if self.secure_aggregation.enabled and self.strategy.name not in SECURE_STRATEGIES:
            raise ValueError(
                f"strategy {self.strategy.name!r} needs every party's update; with secure aggregation the "
                f"coordinator sees only their sum: use one of {SECURE_STRATEGIES}"
            )
        if self.min_parties > len(self.parties):
            raise ValueError(f"min_parties={self.min_parties} exceeds the {len(self.parties)} parties listed")
        return self

    def party_by_key(self) -> dict[str, str]:
        return {p.public_key: p.name for p in self.parties}


def load_yaml_model(path: Path, model: type[BaseModel]) -> Any:
    """Read a YAML file into ``model``; relative paths inside stay relative to the file's folder."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    try:
        return model.model_validate(raw, context={"base": Path(path).resolve().parent})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{path}: {problems}") from None


def resolve(path: Path | None, base: Path) -> Path | None:
    """``path`` made absolute against ``base`` (the config file's folder)."""
    if path is None:
        return None
    return path if path.is_absolute() else (base / path).resolve()


def load_federation_config(path: Path) -> FederationConfig:
    config: FederationConfig = load_yaml_model(path, FederationConfig)
    base = Path(path).resolve().parent
    config.coordinator.secret_key_file = resolve(config.coordinator.secret_key_file, base)
    config.holdout = resolve(config.holdout, base)
    return config


def dump_yaml(model: BaseModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))
    return path

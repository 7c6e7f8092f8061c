"""The demo scenario: split a scikit-learn dataset among parties, write their configs and keys.

Everything lands in the workspace: each party's CSV in its own folder, the coordinator's held-out
split, CURVE key pairs, ``party.yaml`` files and one ``federation.yaml``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split

from components.adapters.contracts import load_contract, split_features
from components.adapters.transport import read_keypair, write_keypair
from components.adapters.workspace import Workspace
from components.core import standardization
from components.core.config import (
    ContractRef,
    CoordinatorConfig,
    FederationConfig,
    ModelConfig,
    PartyEntry,
    PromotionConfig,
    TrainingSpec,
    dump_yaml,
)
from components.core.partition import partition
from components.core.policy import PartyPolicy
from components.ml.model import build_model, get_params
from components.ml.training import evaluate, train_local
from components.run.federation import model_spec
from components.run.summary import RoundMetrics

PARTY_NAMES = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
]
Dataset = Literal["breast_cancer", "digits", "diabetes"]


@dataclass(frozen=True)
class DemoLayout:
    federation_config: Path
    party_configs: dict[str, Path]
    party_data: dict[str, Path]
    holdout: Path
    train_frame: pd.DataFrame
    bind: str  # where the coordinator listens


def demo_party_names(count: int) -> list[str]:
    """Greek letters for up to ten parties, ``party-00``, ``party-01``, ... for more."""
    return PARTY_NAMES[:count] if count <= len(PARTY_NAMES) else [f"party-{index:02d}" for index in range(count)]


def dataset_frame(name: Dataset) -> pd.DataFrame:
    """A scikit-learn dataset as a frame with the contract's column names."""
    contract = load_contract(name)
    if name == "diabetes":  # regression: the features keep scikit-learn's names, the target is the contract's
        frame = load_diabetes(as_frame=True).frame.rename(columns={"target": contract.target})
        return frame[contract.columns].astype(np.float64)
    bunch = load_breast_cancer() if name == "breast_cancer" else load_digits()
    frame = pd.DataFrame(bunch.data.astype(np.float64), columns=contract.features)
    frame[contract.target] = bunch.target.astype(np.int64)
    return frame


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_demo(
    workspace: Workspace,
    parties: int = 3,
    rounds: int = 10,
    partition_kind: Literal["iid", "dirichlet", "quantity"] = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    dataset: Dataset = "breast_cancer",
    port: int | None = None,
    hidden: tuple[int, ...] = (32,),
    party_address: str | None = None,
    frame: pd.DataFrame | None = None,
) -> DemoLayout:
    """Write data, keys and configs for a local federation of ``parties`` parties.

    Parties dial ``party_address`` when given (e.g. a relay in front of the coordinator), else the
    address the coordinator binds. ``frame`` replaces the dataset's rows (generated rows of its contract).
    """
    if parties < 1:
        raise ValueError(f"a federation needs at least one party, got {parties}")
    workspace.create()
    contract = load_contract(dataset)
    frame = dataset_frame(dataset) if frame is None else frame
    stratify = frame[contract.target] if contract.is_classification else None
    train, holdout = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    coordinator_dir = workspace.root / "coordinator"
    coordinator_dir.mkdir(parents=True, exist_ok=True)
    holdout_path = coordinator_dir / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    _, coordinator_secret = write_keypair(coordinator_dir / "keys", "coordinator", overwrite=True)
    coordinator_public = read_keypair(coordinator_secret).public

    train = train.reset_index(drop=True)
    shares = partition(partition_kind, train[contract.target].to_numpy(), parties, seed, alpha)
    address = f"tcp://127.0.0.1:{port or free_port()}"
    entries, party_configs, party_data = [], {}, {}
    federation_name = f"{dataset.replace('_', '-')}-demo"
    for name, rows in zip(demo_party_names(parties), shares, strict=True):
        folder = workspace.parties / name
        data_path = folder / "data" / "train.csv"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        train.iloc[rows].to_csv(data_path, index=False)
        _, secret = write_keypair(folder / "keys", name, overwrite=True)
        party_yaml = {
            "name": name,
            "data": str(data_path),
            "contract": dataset,
            "coordinator": party_address or address,
            "coordinator_public_key": coordinator_public,
            "secret_key_file": str(secret),
            "heartbeat_interval_s": 1.0,
            "audit_log": str(folder / "audit.jsonl"),
            "wire_log": str(folder / "wire.bin"),
            "policy": str(
                dump_yaml(
                    PartyPolicy(coordinators=[coordinator_public], federations=[federation_name]),
                    folder / "policy.yaml",
                )
            ),
            "validation_cache": str(folder / "validations"),
        }
        party_configs[name] = _write_yaml(folder / "party.yaml", party_yaml)
        party_data[name] = data_path
        entries.append(PartyEntry(name=name, public_key=read_keypair(secret).public))
    config = FederationConfig(
        name=federation_name,
        contract=ContractRef(name=dataset, version=contract.version),
        model=ModelConfig(hidden=list(hidden), seed=seed),
        training=TrainingSpec(seed=seed),
        rounds=rounds,
        min_parties=max(1, parties - 1),
        round_timeout_s=60,
        join_timeout_s=90,
        holdout=holdout_path,
        coordinator=CoordinatorConfig(bind=address, secret_key_file=coordinator_secret),
        parties=entries,
        promotion=PromotionConfig(model_name=f"consortia-{dataset.replace('_', '-')}"),
    )
    federation_path = dump_yaml(config, workspace.root / "federation.yaml")
    return DemoLayout(federation_path, party_configs, party_data, holdout_path, train, address)


def _write_yaml(path: Path, payload: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


def centralized_baseline(layout: DemoLayout, config: FederationConfig) -> RoundMetrics:
    """The same model and optimiser on the pooled training rows, for the same total epochs."""
    contract = load_contract(config.contract.name, config.contract.version)
    features, labels = split_features(layout.train_frame, contract)
    holdout_x, holdout_y = split_features(pd.read_csv(layout.holdout), contract)
    spec = model_spec(config.model, contract)
    params = standardization.fit_rows(get_params(build_model(spec)), features)
    epochs = config.rounds * config.training.local_epochs
    training = config.training.model_copy(update={"local_epochs": epochs})
    params, _ = train_local(spec, params, features, labels, training)
    return RoundMetrics(**evaluate(spec, params, holdout_x, holdout_y))

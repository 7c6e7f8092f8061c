"""A local federation for benchmarks: any number of parties, any MLP, data split the way the demo splits it.

Like ``flows.demo.prepare_demo`` (same hold-out split, same partitioner, same default training settings)
but without its ten-party limit, with the model's hidden sizes chosen by the caller, and with the
address the parties dial kept separate from the one the coordinator binds (so a byte-counting relay
can sit between them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from sklearn.model_selection import train_test_split

from components.config import (
    ContractRef,
    CoordinatorConfig,
    FederationConfig,
    ModelConfig,
    PartyEntry,
    PromotionConfig,
    dump_yaml,
)
from components.contracts import load_contract
from components.partition import PartitionKind, partition
from components.training import TrainingSpec
from components.transport import read_keypair, write_keypair
from components.workspace import Workspace
from flows.demo import Dataset, dataset_frame, free_port


@dataclass(frozen=True)
class LocalFederation:
    """Paths of a prepared federation."""

    workspace: Workspace
    federation_config: Path
    party_configs: dict[str, Path]
    party_data: dict[str, Path]
    holdout: Path
    bind: str
    target: str


def party_names(count: int) -> list[str]:
    return [f"party-{index:02d}" for index in range(count)]


def build_federation(
    root: Path,
    parties: int,
    rounds: int,
    seed: int,
    hidden: list[int],
    alpha: float = 0.5,
    partition_kind: PartitionKind = "dirichlet",
    dataset: Dataset = "digits",
    party_address: str | None = None,
    round_timeout_s: float = 120.0,
) -> LocalFederation:
    """Write data, keys and configs for ``parties`` local parties; parties dial ``party_address`` if given."""
    workspace = Workspace.at(root).create()
    contract = load_contract(dataset)
    frame = dataset_frame(dataset)
    train, holdout = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame[contract.target])
    coordinator_dir = workspace.root / "coordinator"
    coordinator_dir.mkdir(parents=True, exist_ok=True)
    holdout_path = coordinator_dir / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    _, coordinator_secret = write_keypair(coordinator_dir / "keys", "coordinator")
    coordinator_public = read_keypair(coordinator_secret).public
    bind = f"tcp://127.0.0.1:{free_port()}"

    train = train.reset_index(drop=True)
    shares = partition(partition_kind, train[contract.target].to_numpy(), parties, seed, alpha)
    entries, party_configs, party_data = [], {}, {}
    for name, rows in zip(party_names(parties), shares, strict=True):
        folder = workspace.parties / name
        data_path = folder / "data" / "train.csv"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        train.iloc[rows].to_csv(data_path, index=False)
        _, secret = write_keypair(folder / "keys", name)
        party_yaml = {
            "name": name,
            "data": str(data_path),
            "contract": dataset,
            "coordinator": party_address or bind,
            "coordinator_public_key": coordinator_public,
            "secret_key_file": str(secret),
            "heartbeat_interval_s": 1.0,
        }
        party_configs[name] = folder / "party.yaml"
        party_configs[name].write_text(yaml.safe_dump(party_yaml, sort_keys=False))
        party_data[name] = data_path
        entries.append(PartyEntry(name=name, public_key=read_keypair(secret).public))
    config = FederationConfig(
        name="benchmark",
        contract=ContractRef(name=dataset, version=contract.version),
        model=ModelConfig(hidden=hidden, seed=seed),
        training=TrainingSpec(seed=seed),
        rounds=rounds,
        min_parties=parties,
        round_timeout_s=round_timeout_s,
        join_timeout_s=300,
        holdout=holdout_path,
        coordinator=CoordinatorConfig(bind=bind, secret_key_file=coordinator_secret),
        parties=entries,
        promotion=PromotionConfig(model_name="consortia-benchmark"),
    )
    federation_path = dump_yaml(config, workspace.root / "federation.yaml")
    return LocalFederation(workspace, federation_path, party_configs, party_data, holdout_path, bind, contract.target)

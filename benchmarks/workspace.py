"""A local federation for benchmarks: the demo's layout on digits, with every party required each round.

``flows.demo.prepare_demo`` writes data, keys and configs (any number of parties, any MLP, parties
optionally dialling a relay instead of the coordinator); this module loosens the demo's timeouts,
requires all parties, so a benchmark round never starts short, and leaves out the demo's byte-for-byte wire
capture (``wire_log``, a forensic option off by default): parties run as a data owner's default config runs
them, with their audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from components.adapters.contracts import load_contract
from components.adapters.workspace import Workspace
from components.core.config import dump_yaml, load_federation_config
from components.core.partition import PartitionKind
from flows.demo import Dataset, DemoLayout, prepare_demo


@dataclass(frozen=True)
class LocalFederation:
    """A prepared federation: its workspace, the demo layout and the contract's target column."""

    workspace: Workspace
    layout: DemoLayout
    target: str


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
    workspace = Workspace.at(root)
    layout = prepare_demo(
        workspace,
        parties=parties,
        rounds=rounds,
        partition_kind=partition_kind,
        alpha=alpha,
        seed=seed,
        dataset=dataset,
        hidden=tuple(hidden),
        party_address=party_address,
    )
    config = load_federation_config(layout.federation_config)
    required = config.model_copy(
        update={"min_parties": parties, "round_timeout_s": round_timeout_s, "join_timeout_s": 300}
    )
    dump_yaml(required, layout.federation_config)
    for party_config in layout.party_configs.values():
        settings = yaml.safe_load(party_config.read_text())
        settings.pop("wire_log", None)
        party_config.write_text(yaml.safe_dump(settings, sort_keys=False))
    return LocalFederation(workspace, layout, load_contract(dataset).target)

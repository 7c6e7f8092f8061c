"""A party validates its rows once per (data file, contract) and reuses the signed-off summary while neither changes."""

from pathlib import Path

from components.adapters.workspace import Workspace
from components.twins.contracts import validate_with_schema
from flows.demo import prepare_demo
from party_agent.agent import PartyAgent
from party_agent.config import load_party_config


def test_the_summary_is_reused_until_the_rows_change(tmp_path: Path):
    layout = prepare_demo(Workspace.at(tmp_path), parties=2, rounds=1)
    config = load_party_config(layout.party_configs["alpha"])
    calls = []

    def counting_validate(frame, contract):
        calls.append(len(frame))
        return validate_with_schema(frame, contract)

    first = PartyAgent(config, validate=counting_validate)._validate_own_data()
    again = PartyAgent(config, validate=counting_validate)._validate_own_data()
    with open(config.data, "a") as rows:  # one more row: another content hash
        rows.write(Path(config.data).read_text().splitlines()[-1] + "\n")
    changed = PartyAgent(config, validate=counting_validate)._validate_own_data()

    assert calls == [first.row_count, first.row_count + 1]
    assert again == first and first.success
    assert changed.row_count == first.row_count + 1
    assert len(list(config.validation_cache.glob("*.json"))) == 2

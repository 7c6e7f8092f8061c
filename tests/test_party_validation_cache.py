"""A party validates its rows once per (data file, contract) and reuses the signed-off summary while neither changes."""

from pathlib import Path

from typer.testing import CliRunner

from components.adapters.workspace import Workspace
from components.twins.contracts import validate_with_schema
from flows.demo import prepare_demo
from party_agent.agent import PartyAgent
from party_agent.cli import app as party_app
from party_agent.config import load_party_config


def _counting(calls: list[int]):
    """The schema twin of validation, noting the row count of every frame it validates."""

    def counting_validate(frame, contract):
        calls.append(len(frame))
        return validate_with_schema(frame, contract)

    return counting_validate


def test_the_summary_is_reused_until_the_rows_change(tmp_path: Path):
    layout = prepare_demo(Workspace.at(tmp_path), parties=2, rounds=1)
    config = load_party_config(layout.party_configs["alpha"])
    calls: list[int] = []
    counting_validate = _counting(calls)

    first = PartyAgent(config, validate=counting_validate)._validate_own_data()
    again = PartyAgent(config, validate=counting_validate)._validate_own_data()
    with open(config.data, "a") as rows:  # one more row: another content hash
        rows.write(Path(config.data).read_text().splitlines()[-1] + "\n")
    changed = PartyAgent(config, validate=counting_validate)._validate_own_data()

    assert calls == [first.row_count, first.row_count + 1]
    assert again == first and first.success
    assert changed.row_count == first.row_count + 1
    assert len(list(config.validation_cache.glob("*.json"))) == 2


def test_party_agent_check_signs_off_the_summary_the_agent_then_reuses(tmp_path: Path):
    layout = prepare_demo(Workspace.at(tmp_path), parties=2, rounds=1)
    config = load_party_config(layout.party_configs["alpha"])
    calls: list[int] = []
    counting_validate = _counting(calls)

    checked = CliRunner().invoke(party_app, ["check", "--config", str(layout.party_configs["alpha"])])
    reused = PartyAgent(config, validate=counting_validate)._validate_own_data()

    assert checked.exit_code == 0, checked.output
    assert "signed off in" in checked.output
    assert calls == []  # the agent did not validate again: `check` had
    assert reused.success and reused.row_count == len(PartyAgent(config).frame)

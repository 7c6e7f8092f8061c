"""`party-agent init` and `check`: what a data owner runs before joining."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from components.adapters.transport import new_keypair
from flows.cli import app as consortia_app
from flows.demo import dataset_frame
from party_agent.cli import app as party_app

README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_KEY = "rQ$x!9a" + "0" * 33  # a valid Z85 key with the characters a shell expands in double quotes


def _party_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "party_agent", *args], capture_output=True, text=True, timeout=120)


def test_init_writes_config_and_keys_then_check_passes_and_fails(tmp_path):
    data = tmp_path / "alpha.csv"
    dataset_frame("breast_cancer").head(100).to_csv(data, index=False)
    coordinator_key = new_keypair().public
    init = _party_agent(
        "init",
        "--name",
        "alpha",
        "--data",
        str(data),
        "--contract",
        "breast_cancer",
        "--coordinator-key",
        coordinator_key,
    )
    assert init.returncode == 0, init.stderr
    public_key = init.stdout.strip().splitlines()[-1]
    assert len(public_key) == 40
    config = yaml.safe_load((tmp_path / "party.yaml").read_text())
    assert config["name"] == "alpha" and config["coordinator_public_key"] == coordinator_key
    assert (tmp_path / "keys" / "alpha.key_secret").stat().st_mode & 0o077 == 0

    check = _party_agent("check", "--config", str(tmp_path / "party.yaml"))
    assert check.returncode == 0, check.stdout + check.stderr
    first = check.stdout.splitlines()[0]
    assert first.startswith("alpha against breast_cancer@v1, 100 rows: passed: ")  # the verdict comes first
    passed, total = first.rsplit(" ", 1)[1].split("/")
    assert passed == total and int(total) > 10

    frame = pd.read_csv(data)
    frame.loc[3, "mean_radius"] = -5.0
    frame.to_csv(data, index=False)
    failing = _party_agent("check", "--config", str(tmp_path / "party.yaml"))
    assert failing.returncode == 1
    verdict, *rest = failing.stdout.splitlines()
    total = int(check.stdout.splitlines()[0].rsplit("/", 1)[1])
    assert verdict == f"alpha against breast_cancer@v1, 100 rows: FAILED: 1 of {total}, see below"
    rows = [line for line in rest if " pass " in line or " FAIL " in line]
    assert " FAIL " in rows[0] and all(" pass " in line for line in rows[1:])  # the failure first

    data.write_text('mean_radius,diagnosis\n1.0,"0\n')
    broken = _party_agent("check", "--config", str(tmp_path / "party.yaml"))
    assert broken.returncode == 1  # unreadable as the contract needs: the data fails it, like a failed expectation
    assert "FAILED alpha against breast_cancer@v1" in broken.stderr


def _init(folder: Path, key: str, *extra: str, **options: str):
    """``party-agent init`` for party alpha with ``folder/alpha.csv``; ``options`` replace --name, --data, ..."""
    chosen = {"name": "alpha", "data": str(folder / "alpha.csv"), "contract": "breast_cancer", **options}
    arguments = [part for option, value in chosen.items() for part in (f"--{option}", value)]
    return CliRunner().invoke(party_app, ["init", *arguments, "--coordinator-key", key, *extra])


def _written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "alpha.csv")


@pytest.fixture
def csv_folder(tmp_path) -> Path:
    dataset_frame("breast_cancer").head(20).to_csv(tmp_path / "alpha.csv", index=False)
    return tmp_path


EXPANDED_KEY = SHELL_KEY.replace("$x!9a", "")  # what bash makes of "rQ$x!9a..." in double quotes ($x is empty)


@pytest.mark.parametrize(
    ("key", "options", "expected"),
    [
        (EXPANDED_KEY, {}, "error: --coordinator-key has 35 characters, a CURVE public key has 40; paste it in single"),
        ('"' * 40, {}, "error: --coordinator-key is not a Z85 CURVE public key; paste it in single quotes"),
        (SHELL_KEY, {"data": "missing.csv"}, "error: --data missing.csv: no such file"),
        (SHELL_KEY, {"contract": "nope"}, "error: --contract: no data contract nope in "),
        (SHELL_KEY, {"name": "al pha"}, "error: --name: String should match pattern"),
        (SHELL_KEY, {"coordinator": "localhost:5555"}, "error: --coordinator 'localhost:5555': expected an address"),
    ],
    ids=["key-the-shell-expanded", "key-not-z85", "missing-csv", "unknown-contract", "bad-name", "bad-address"],
)
def test_init_checks_every_argument_before_writing_anything_and_says_what_is_wrong_in_one_line(
    csv_folder, key, options, expected
):
    result = _init(csv_folder, key, **options)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.output
    assert _written(csv_folder) == []  # no keys/, no party.yaml


def test_init_keeps_existing_keys_and_config_unless_forced(csv_folder):
    first = _init(csv_folder, SHELL_KEY)
    assert first.exit_code == 0, first.stderr
    public = (csv_folder / "keys" / "alpha.key").read_bytes()
    secret = (csv_folder / "keys" / "alpha.key_secret").read_bytes()
    config = (csv_folder / "party.yaml").read_bytes()

    second = _init(csv_folder, new_keypair().public)
    assert second.exit_code == 2
    assert re.match(r"error: \S+/keys/alpha.key exists: keeping it \(pass --force", second.stderr)
    assert (csv_folder / "keys" / "alpha.key").read_bytes() == public
    assert (csv_folder / "keys" / "alpha.key_secret").read_bytes() == secret
    assert (csv_folder / "party.yaml").read_bytes() == config

    forced = _init(csv_folder, SHELL_KEY, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (csv_folder / "keys" / "alpha.key").read_bytes() != public
    assert forced.stdout.strip().splitlines()[-1] in (csv_folder / "keys" / "alpha.key").read_text()


def test_consortia_keys_keeps_an_existing_pair_unless_forced(tmp_path):
    runner = CliRunner()
    first = runner.invoke(consortia_app, ["keys", "coordinator", "--out", str(tmp_path)])
    assert first.exit_code == 0, first.output
    secret = (tmp_path / "coordinator.key_secret").read_bytes()
    again = runner.invoke(consortia_app, ["keys", "coordinator", "--out", str(tmp_path)])
    assert again.exit_code == 1
    assert "coordinator.key exists: keeping the key pair (pass --force to replace it)" in again.output
    assert (tmp_path / "coordinator.key_secret").read_bytes() == secret
    forced = runner.invoke(consortia_app, ["keys", "coordinator", "--out", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "coordinator.key_secret").read_bytes() != secret


def test_the_readme_init_command_pasted_into_bash_works_with_a_key_holding_dollar_and_bang(tmp_path):
    block = README.read_text().split("# 1. write party.yaml", 1)[1].split("# 2.", 1)[0]
    command = block.split("\n", 1)[1].replace("/data/", f"{tmp_path}/")
    assert "'<coordinator public key>'" in command  # single quotes: the shell passes $ and ! through
    dataset_frame("breast_cancer").head(20).to_csv(tmp_path / "alpha.csv", index=False)
    bin_folder = Path(sys.executable).parent  # the README: consortia and party-agent are in .venv/bin
    result = subprocess.run(
        ["bash", "-c", command.replace("<coordinator public key>", SHELL_KEY)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{bin_folder}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((tmp_path / "party.yaml").read_text())["coordinator_public_key"] == SHELL_KEY
    assert shutil.which("party-agent", path=str(bin_folder))

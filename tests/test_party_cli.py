"""`party-agent init` and `check`: what a data owner runs before joining."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import yaml

from components.adapters.transport import new_keypair
from flows.demo import dataset_frame


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
    assert "100 rows" in check.stdout

    frame = pd.read_csv(data)
    frame.loc[3, "mean_radius"] = -5.0
    frame.to_csv(data, index=False)
    failing = _party_agent("check", "--config", str(tmp_path / "party.yaml"))
    assert failing.returncode == 1
    assert "FAIL" in failing.stdout

    data.write_text('mean_radius,diagnosis\n1.0,"0\n')
    broken = _party_agent("check", "--config", str(tmp_path / "party.yaml"))
    assert broken.returncode == 2
    assert "error" in broken.stderr

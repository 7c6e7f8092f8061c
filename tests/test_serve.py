"""``consortia serve NAME@champion`` as a real process: HTTP predictions from a federation's registered model.

One 2-party, 1-round federation registers ``consortia-breast-cancer`` (version 1, ``champion``); the server
is then started on a free port and asked over HTTP (urllib, and the README's curl command as written), given
malformed requests that must get a 4xx naming the problem, and stopped with SIGTERM and reaped.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows.demo import free_port
from flows.processes import PartyProcesses, stop_process_groups
from tests.federation_helpers import make_federation, run_consortia, start_consortia, wait_for_health

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
MODEL = "consortia-breast-cancer"
README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    holdout: pd.DataFrame
    workspace: Path


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON to ``url``/invocations; the status and the decoded JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    workspace, layout = make_federation(root, parties=2, rounds=1)
    with PartyProcesses(layout.party_configs, workspace.logs):
        trained = run_consortia("run", str(layout.federation_config), "--run-id", "served-run", workspace=root)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    port = free_port()
    log = root / "serve.log"
    process = start_consortia("serve", f"{MODEL}@champion", "--port", str(port), workspace=root, log=log)
    served = Server(process, f"http://127.0.0.1:{port}", port, log, pd.read_csv(layout.holdout), root)
    try:
        wait_for_health(served.url, process, log, timeout_s=180)
        yield served
    finally:
        stop_process_groups([process])


def test_dataframe_split_and_records_get_one_probability_per_class(server: Server):
    rows = server.holdout.head(40)
    features = rows.drop(columns=["diagnosis"])

    split_body = {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}
    split_status, split = post(server.url, split_body)
    records_status, records = post(server.url, {"dataframe_records": json.loads(rows.to_json(orient="records"))})

    assert (split_status, records_status) == (200, 200)
    answered = pd.DataFrame(split["predictions"])
    assert list(answered.columns) == ["0", "1"] and len(answered) == len(rows)  # the contract's classes
    np.testing.assert_allclose(answered.sum(axis=1), 1.0, rtol=1e-5)
    assert (answered.to_numpy().argmax(axis=1) == rows["diagnosis"].to_numpy()).mean() > 0.8
    assert records["predictions"] == split["predictions"]  # by name: the label column is ignored
    assert f"serving {MODEL} version 1 on {server.url}/invocations" in server.log.read_text()


def test_a_misnamed_column_gets_a_400_naming_it(server: Server):
    record = server.holdout.drop(columns=["diagnosis"]).iloc[0].to_dict()
    record["radius"] = record.pop("mean_radius")

    status, error = post(server.url, {"dataframe_records": [record]})

    assert status == 400
    assert error["message"].startswith("Model is missing inputs ['mean_radius']"), error["message"]
    assert "extra inputs: ['radius']" in error["message"]
    assert "mean_texture" not in error["message"]  # the frame and schema MLflow quotes are cut


def test_a_wrongly_typed_value_gets_a_400_naming_the_column(server: Server):
    record = server.holdout.drop(columns=["diagnosis"]).iloc[0].to_dict()
    record["mean_area"] = "large"

    status, error = post(server.url, {"dataframe_records": [record]})

    assert status == 400
    assert "column mean_area" in error["message"] and "'large'" in error["message"], error["message"]


def test_a_null_value_gets_a_400_naming_the_column(server: Server):
    record = server.holdout.drop(columns=["diagnosis"]).iloc[0].to_dict()
    record["worst_area"] = None

    status, error = post(server.url, {"dataframe_records": [record]})

    assert status == 400
    assert error["message"] == "feature columns ['worst_area'] have missing (null, NaN) or infinite values"


def test_a_body_that_is_not_a_scoring_request_gets_a_400(server: Server):
    not_json_status, not_json = post(server.url, b"{mean_radius: 1")
    wrong_key_status, wrong_key = post(server.url, {"rows": [{"mean_radius": 1.0}]})

    assert not_json_status == 400 and "valid JSON" in not_json["message"]
    assert wrong_key_status == 400 and "dataframe_records" in wrong_key["message"]


def test_the_readme_curl_example_works_as_written(server: Server):
    block = README.read_text().split("consortia serve consortia-breast-cancer@champion --port 5000", 1)[1]
    command = re.search(r"^curl .*?'\n", block, re.DOTALL | re.MULTILINE).group(0)
    assert "127.0.0.1:5000" in command

    answered = subprocess.run(
        ["bash", "-c", command.replace("127.0.0.1:5000", f"127.0.0.1:{server.port}")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert answered.returncode == 0, answered.stderr
    (prediction,) = json.loads(answered.stdout)["predictions"]
    assert set(prediction) == {"0", "1"} and prediction["0"] > 0.5  # the README's row: malignant (class 0)


def test_an_unknown_alias_or_version_is_refused_naming_what_exists(server: Server):
    no_alias = run_consortia("serve", f"{MODEL}@production", "--port", str(free_port()), workspace=server.workspace)
    no_version = run_consortia("serve", f"{MODEL}@9", "--port", str(free_port()), workspace=server.workspace)

    assert no_alias.returncode == 1
    refusal = " ".join(no_alias.stdout.split())
    assert f"{MODEL} has no alias 'production' (aliases: ['challenger', 'champion'])" in refusal
    assert no_version.returncode == 1
    assert f"{MODEL} has no version 9 (versions: [1])" in " ".join(no_version.stdout.split())


def test_a_port_in_use_is_refused_before_the_model_loads(server: Server):
    taken = run_consortia("serve", f"{MODEL}@champion", "--port", str(server.port), workspace=server.workspace)

    assert taken.returncode == 1
    assert f"cannot listen on 127.0.0.1:{server.port}: Address already in use" in " ".join(taken.stdout.split())
    assert "serving" not in taken.stdout


def test_sigterm_stops_the_server_and_frees_the_port(server: Server):
    server.process.send_signal(signal.SIGTERM)

    assert server.process.wait(timeout=60) == 0, server.log.read_text()  # uvicorn shuts down gracefully
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/ping", timeout=2)

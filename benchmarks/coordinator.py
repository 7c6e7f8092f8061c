"""Run one Consortia federation (the Prefect flow, as ``consortia run`` does) and note when each round ended.

``python -m benchmarks.coordinator CONFIG WORKSPACE TIMELINE``: writes TIMELINE as JSON with the wall-clock
time after every finished round, the time the run finished and the run summary's path.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from components.adapters.workspace import Workspace
from components.run.logs import log_to_file
from components.run.summary import RoundRow
from flows.startup import open_for_run


def run(config: Path, workspace: Workspace, timeline: Path) -> None:
    log_to_file(workspace.coordinator_log)  # as the consortia CLI logs
    open_for_run(workspace)  # as the consortia CLI does
    from flows.federation import run_federation

    round_ends: list[float] = []

    def on_round(row: RoundRow) -> None:
        round_ends.append(time.time())

    run_id = f"benchmark-{int(time.time() * 1000)}"
    summary = run_federation(config, workspace.root, run_id, on_round)
    finished = time.time()
    timeline.write_text(json.dumps({"round_ends": round_ends, "finished": finished, "summary": str(summary)}))


if __name__ == "__main__":
    config_path, workspace_path, timeline_path = sys.argv[1:4]
    run(Path(config_path), Workspace.at(workspace_path), Path(timeline_path))

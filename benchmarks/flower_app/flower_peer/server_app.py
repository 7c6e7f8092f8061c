"""The coordinator side, doing what Consortia's run does each round: FedAvg, then held-out evaluation.

Like Consortia, it first fits the model's input standardisation from the parties' summed statistics
(a QUERY round), then trains; every round ends with the global model scored on the coordinator's
held-out rows. Timestamps and scores go to the JSON file named by the ``result`` run-config value.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from flower_peer.task import build_model, evaluate, load_rows, parse_hidden

app = ServerApp()


def wait_for_nodes(grid: Grid, count: int, timeout_s: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(nodes)} of {count} SuperNodes connected within {timeout_s:.0f}s")
        time.sleep(0.2)
    return nodes


def fitted_scaling(grid: Grid, nodes: list[int], target: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of every feature from the parties' row counts, sums and sums of squares."""
    config = ConfigRecord({"target": target})
    asks = [
        Message(RecordDict({"config": config}), dst_node_id=node, message_type=MessageType.QUERY, group_id="profile")
        for node in nodes
    ]
    replies = list(grid.send_and_receive(asks))
    if failed := [reply.error.reason for reply in replies if reply.has_error()]:
        raise RuntimeError(f"{len(failed)} parties could not profile their data: {failed[0]}")
    count = sum(int(r.content["count"]["count"]) for r in replies)
    total = sum(r.content["sums"]["sum"].numpy() for r in replies)
    total_sq = sum(r.content["sums"]["sum_sq"].numpy() for r in replies)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


@app.main()
def main(grid: Grid, context: Context) -> None:
    started = time.time()
    run = context.run_config
    hidden = parse_hidden(str(run["hidden"]))
    n_features, n_classes, seed = int(run["n-features"]), int(run["n-classes"]), int(run["seed"])
    holdout_x, holdout_y = load_rows(Path(str(run["holdout"])), str(run["target"]))
    parties = int(run["parties"])

    nodes = wait_for_nodes(grid, parties)
    model = build_model(n_features, n_classes, hidden, seed)
    mean, scale = fitted_scaling(grid, nodes, str(run["target"]))
    model.standardize.mean.copy_(torch.from_numpy(mean))
    model.standardize.scale.copy_(torch.from_numpy(scale))

    round_ends: list[float] = []
    scores: list[dict[str, float]] = []

    def evaluate_global(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        score = evaluate(model, holdout_x, holdout_y)
        round_ends.append(time.time())
        scores.append(score)
        return MetricRecord(score)

    train_config = ConfigRecord(
        {
            "target": str(run["target"]),
            "n-features": n_features,
            "n-classes": n_classes,
            "hidden": str(run["hidden"]),
            "local-epochs": int(run["local-epochs"]),
            "batch-size": int(run["batch-size"]),
            "learning-rate": float(run["learning-rate"]),
            "momentum": float(run["momentum"]),
            "seed": seed,
        }
    )
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=parties, min_available_nodes=parties)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=int(run["num-rounds"]),
        train_config=train_config,
        evaluate_fn=evaluate_global,
    )
    result = {"started": started, "round_ends": round_ends, "scores": scores, "finished": time.time()}
    path = Path(str(run["result"]))
    path.with_suffix(".tmp").write_text(json.dumps(result))
    path.with_suffix(".tmp").replace(path)  # the benchmark never reads a half-written file

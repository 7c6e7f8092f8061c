"""The party side: profile the local rows once, then train the global model each round."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_peer.task import build_model, load_rows, parse_hidden, train_local

app = ClientApp()


@cache
def local_rows(path: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    return load_rows(Path(path), target)


def data_path(context: Context) -> str:
    """This party's rows: a SuperNode's ``data`` node config (deployment), or the ``partition-id``-th path of
    the ``party-data`` run config (simulation, whose virtual SuperNodes carry only a partition id)."""
    if "data" in context.node_config:
        return str(context.node_config["data"])
    return str(context.run_config["party-data"]).split(",")[int(context.node_config["partition-id"])]


@app.query()
def profile(msg: Message, context: Context) -> Message:
    """Row count and per-feature sums, as Consortia's PROFILE reply (never rows)."""
    features, _ = local_rows(data_path(context), str(msg.content["config"]["target"]))
    x = features.astype(np.float64)
    sums = ArrayRecord({"sum": Array(x.sum(axis=0)), "sum_sq": Array(np.square(x).sum(axis=0))})
    return Message(RecordDict({"sums": sums, "count": MetricRecord({"count": len(x)})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    features, labels = local_rows(data_path(context), str(config["target"]))
    model = build_model(int(config["n-features"]), int(config["n-classes"]), parse_hidden(str(config["hidden"])), 0)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    started = time.perf_counter()
    loss = train_local(
        model,
        features,
        labels,
        epochs=int(config["local-epochs"]),
        batch_size=int(config["batch-size"]),
        learning_rate=float(config["learning-rate"]),
        momentum=float(config["momentum"]),
        seed=int(config["seed"]),
        round_number=int(config["server-round"]),
    )
    metrics = MetricRecord({"num-examples": len(labels), "train_loss": loss, "seconds": time.perf_counter() - started})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)

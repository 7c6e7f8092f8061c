"""The served model, torch side: a federation's final model answering a frame of named feature columns.

The registered MLflow model is a pyfunc whose code (written by the tracking adapter) only calls
``ServedPredictor.load`` and ``predict``. The model travels as two files: what it is (a ``ServedModel`` as
JSON: the ``ModelSpec``, feature names, class names, task) and its weights (``.npz``, one array per
parameter name, read without pickle). ``predict`` picks the feature columns by name (any order, extra
columns ignored, any numeric dtype; a missing or infinite value is refused, as the contract refuses nulls),
runs the model on them as float32 (``components.ml.model.serving_model``: softmax for classification) and
answers one probability column per class name or, for regression, one ``prediction`` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.core.model_spec import ModelSpec
from components.core.ports import ServedModel
from components.ml.model import build_model, serving_model, set_params


class ServedPredictor:
    """The model ``served`` describes, with ``params`` loaded; checks its input width and output columns."""

    def __init__(self, served: ServedModel, params: Mapping[str, np.ndarray]) -> None:
        self.served = served
        spec = ModelSpec.model_validate(served.spec)
        if spec.n_features != len(served.features):
            raise ValueError(f"the spec reads {spec.n_features} features, but {len(served.features)} are named")
        if spec.task != served.task:
            raise ValueError(f"the spec's task is {spec.task}, the served model's {served.task}")
        model = build_model(spec)
        set_params(model, params)
        self._model = serving_model(spec, model)  # in eval mode: probabilities, or one value per row
        width = self._forward(np.zeros((1, spec.n_features), dtype=np.float32)).shape[1]
        if width != len(served.outputs):
            raise ValueError(f"the model answers {width} values per row, but the outputs are {served.outputs}")

    @classmethod
    def load(cls, description: str | Path, weights: str | Path) -> ServedPredictor:
        """From the ``ServedModel`` JSON file and the ``.npz`` weights file (no pickle)."""
        served = ServedModel.model_validate_json(Path(description).read_text())
        with np.load(weights, allow_pickle=False) as arrays:
            params = {name: arrays[name] for name in arrays.files}
        return cls(served, params)

    @property
    def outputs(self) -> list[str]:
        return self.served.outputs

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row of outputs (named columns, float64) per row of ``frame``, on ``frame``'s index."""
        features = self.served.features
        missing = [name for name in features if name not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks feature columns {missing}; the model reads {features} by name")
        try:
            values = frame[features].to_numpy(dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"feature columns must be numeric: {error}") from None
        not_finite = [name for name, bad in zip(features, ~np.isfinite(values).all(axis=0), strict=True) if bad]
        if not_finite:
            raise ValueError(f"feature columns {not_finite} have missing (null, NaN) or infinite values")
        outputs = self._forward(values) if len(values) else np.zeros((0, len(self.outputs)))
        return pd.DataFrame(outputs.astype(np.float64), columns=self.outputs, index=frame.index)

    def _forward(self, values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            outputs = self._model(torch.tensor(np.asarray(values, dtype=np.float32)))  # a copy: frames are read-only
            return outputs.reshape(len(values), -1).numpy()

"""Model families from a ModelSpec: the mlp as before, declared layers with inferred sizes and named shape
errors, regression, plug-in models found by entry point and pinned by version, buffers on the wire."""

from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from components.core import standardization
from components.core.config import ModelConfig, TrainingSpec
from components.core.errors import ConfigError
from components.core.model_spec import ModelSpec
from components.core.strategies import ClientUpdate, build_strategy
from components.ml.model import build_model, get_params, parameter_layout, serving_model, set_params
from components.ml.plugins import installed_plugins, load_plugin
from components.ml.training import evaluate, predict, train_local

CNN_LAYERS = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "batchnorm2d"},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.1},
    {"type": "linear", "out_features": 16},
    {"type": "gelu"},
]


def cnn_spec(**extra) -> ModelSpec:
    return ModelSpec(kind="layers", n_features=64, n_classes=3, input_shape=[1, 8, 8], layers=CNN_LAYERS, **extra)


def digits_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 'images' whose class is where the bright block sits (top, bottom, none), flattened to 64 columns."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    images = rng.normal(0, 0.5, size=(n, 8, 8))
    images[labels == 0, :3, :] += 2.0
    images[labels == 1, 5:, :] += 2.0
    return images.reshape(n, 64).astype(np.float32), labels


def fitted(spec: ModelSpec, x: np.ndarray):
    return standardization.fit_rows(get_params(build_model(spec)), x)


# ---- mlp: unchanged ----


def test_the_default_mlp_keeps_its_names_layout_and_float32():
    spec = ModelSpec(n_features=30, n_classes=2, hidden=[32], seed=0)
    layout = parameter_layout(spec)
    assert list(layout) == [
        "standardize.mean",
        "standardize.scale",
        "body.0.weight",
        "body.0.bias",
        "body.2.weight",
        "body.2.bias",
    ]
    assert layout["body.0.weight"] == ((32, 30), "float32") and layout["body.2.weight"] == ((2, 32), "float32")
    assert spec.kind == "mlp" and spec.task == "multiclass" and spec.row_shape == (30,)


def test_same_seed_same_weights_for_every_kind():
    for spec in (ModelSpec(n_features=5, n_classes=2, seed=4), cnn_spec(seed=4)):
        a, b = get_params(build_model(spec)), get_params(build_model(spec))
        assert all(np.array_equal(a[k], b[k]) for k in a)
    other = get_params(build_model(cnn_spec(seed=5)))
    assert not np.array_equal(other["body.0.weight"], get_params(build_model(cnn_spec(seed=4)))["body.0.weight"])


# ---- declared layers ----


def test_a_small_cnn_on_8x8_images_builds_and_learns():
    spec = cnn_spec()
    x, y = digits_like(300)
    layout = parameter_layout(spec)
    assert layout["body.0.weight"] == ((4, 1, 3, 3), "float32")  # in_channels inferred from input_shape
    assert layout["body.6.weight"] == ((16, 64), "float32")  # in_features inferred: 4 x 4 x 4 after the pool
    assert layout["body.8.weight"] == ((3, 16), "float32")  # the appended head to n_classes
    start = fitted(spec, x)
    before = evaluate(spec, start, x, y)
    params = start
    for round_number in (1, 2, 3):
        params, result = train_local(spec, params, x, y, TrainingSpec(learning_rate=0.05), round_number)
    after = evaluate(spec, params, x, y)
    assert after["loss"] < before["loss"] - 0.3, (before, after)
    assert after["accuracy"] > 0.9
    assert set(after) == {"accuracy", "roc_auc", "loss"}
    assert predict(spec, params, x[:5]).shape == (5, 3)


def test_planned_shapes_match_what_torch_computes():
    specs = [
        cnn_spec(),
        ModelSpec(
            kind="layers",
            n_features=24,
            n_classes=2,
            input_shape=[2, 12],
            layers=[
                {"type": "conv1d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
                {"type": "batchnorm1d"},
                {"type": "tanh"},
                {"type": "avgpool1d", "kernel_size": 2},
                {"type": "layernorm", "dims": 2},
                {"type": "maxpool1d", "kernel_size": 3, "stride": 1},
            ],
        ),
        ModelSpec(
            kind="layers",
            n_features=48,
            n_classes=4,
            layers=[
                {"type": "reshape", "shape": [3, -1, 4]},
                {"type": "conv2d", "out_channels": 2, "kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1]},
                {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
                {"type": "leaky_relu", "negative_slope": 0.2},
                {"type": "linear", "out_features": 5, "bias": False},
                {"type": "layernorm"},
                {"type": "sigmoid"},
            ],
        ),
    ]
    for spec in specs:
        model = build_model(spec).eval()
        seen: list[tuple[int, ...]] = []
        hooks = [
            m.register_forward_hook(lambda _, __, out, seen=seen: seen.append(tuple(out.shape[1:]))) for m in model.body
        ]
        with torch.no_grad():
            out = model(torch.randn(3, spec.n_features))
        for hook in hooks:
            hook.remove()
        assert seen == [planned for _, _, planned in spec.plan()]
        assert tuple(out.shape) == (3, spec.n_classes)


def test_the_head_is_appended_only_when_the_layers_do_not_end_in_n_classes():
    ends_right = ModelSpec(kind="layers", n_features=6, n_classes=3, layers=[{"type": "linear", "out_features": 3}])
    assert [layer.type for layer in ends_right.body_layers()] == ["linear"]
    flat = ModelSpec(kind="layers", n_features=6, n_classes=3, layers=[{"type": "linear", "out_features": 8}])
    assert [layer.type for layer in flat.body_layers()] == ["linear", "linear"]
    assert [layer.type for layer in cnn_spec().body_layers()[-2:]] == ["gelu", "linear"]
    image = ModelSpec(
        kind="layers",
        n_features=64,
        n_classes=3,
        input_shape=[1, 8, 8],
        layers=[{"type": "conv2d", "out_channels": 2, "kernel_size": 3}],
    )
    assert [layer.type for layer in image.body_layers()] == ["conv2d", "flatten", "linear"]
    linear_model = ModelSpec(kind="layers", n_features=6, n_classes=3)
    assert list(parameter_layout(linear_model)) == [
        "standardize.mean",
        "standardize.scale",
        "body.0.weight",
        "body.0.bias",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}]}, r"layers\[0\] \(conv2d\): expects 3-d"),
        (
            {
                "input_shape": [1, 8, 8],
                "layers": [{"type": "relu"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 9}],
            },
            r"layers\[1\] \(conv2d\): kernel 9 \(padding 0\) is larger than the input's height 8",
        ),
        (
            {"input_shape": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel_size": 2}, {"type": "batchnorm1d"}]},
            r"layers\[1\] \(batchnorm1d\): expects 1-d or 2-d input",
        ),
        ({"layers": [{"type": "reshape", "shape": [5, 5]}]}, r"layers\[0\] \(reshape\): cannot reshape \[64\]"),
        ({"layers": [{"type": "layernorm", "dims": 2}]}, r"layers\[0\] \(layernorm\): normalises the last 2"),
        ({"input_shape": [2, 8, 8]}, r"input_shape \[2, 8, 8\] holds 128 values per row, but there are n_features=64"),
        (
            {"layers": [{"type": "embedding", "num_embeddings": 4, "embedding_dim": 2}]},
            r"layers\[0\] \(embedding\).*standardize: false",
        ),
        (
            {
                "standardize": False,
                "layers": [{"type": "relu"}, {"type": "embedding", "num_embeddings": 4, "embedding_dim": 2}],
            },
            r"layers\[1\] \(embedding\): takes the raw input as indices",
        ),
        ({"layers": [{"type": "conv3d", "out_channels": 1}]}, r"conv3d"),
        ({"layers": [{"type": "linear", "out_features": 3, "in_features": 64}]}, r"in_features"),
    ],
)
def test_shape_and_layer_mistakes_name_the_layer(fields, message):
    with pytest.raises(ValidationError, match=message):
        ModelSpec(kind="layers", n_features=64, n_classes=3, **fields)


def test_family_fields_and_task_outputs_are_checked():
    with pytest.raises(ValidationError, match="layers are only read when kind is 'layers'"):
        ModelSpec(n_features=4, n_classes=2, layers=[{"type": "relu"}])
    with pytest.raises(ValidationError, match="kind 'plugin' needs plugin"):
        ModelSpec(kind="plugin", n_features=4, n_classes=2)
    with pytest.raises(ValidationError, match="regression model has 1 output"):
        ModelSpec(n_features=4, n_classes=2, task="regression")
    with pytest.raises(ValidationError, match="binary classifier has 2 outputs"):
        ModelSpec(n_features=4, n_classes=3, task="binary")
    with pytest.raises(ValidationError, match="multiclass classifier needs n_classes >= 2"):
        ModelSpec(n_features=4, n_classes=1)
    with pytest.raises(ValidationError, match="extra"):
        ModelSpec(n_features=4, n_classes=2, hiden=[3])


def test_a_spec_travels_as_json_and_the_config_carries_the_fields():
    spec = cnn_spec(task="multiclass", seed=7)
    assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec
    config = ModelConfig.model_validate({"kind": "layers", "layers": CNN_LAYERS, "input_shape": [1, 8, 8], "seed": 7})
    assert config.spec(n_features=64, n_classes=3) == spec
    with pytest.raises(ValidationError, match="kind 'plugin' needs plugin"):
        ModelConfig(kind="plugin")
    with pytest.raises(ValidationError, match="extra"):
        ModelConfig.model_validate({"kind": "layers", "layers": [{"type": "linear", "out_features": 2, "width": 3}]})


def test_an_embedding_model_takes_index_inputs_unstandardised():
    spec = ModelSpec(
        kind="layers",
        n_features=6,
        n_classes=2,
        standardize=False,
        layers=[
            {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4},
            {"type": "flatten"},
            {"type": "linear", "out_features": 8},
            {"type": "relu"},
        ],
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, size=(200, 6)).astype(np.float32)
    y = (x[:, 0] >= 5).astype(np.int64)
    params = fitted(spec, x)  # fitted like any model, but not applied
    before = evaluate(spec, params, x, y)
    for round_number in range(1, 6):
        params, _ = train_local(spec, params, x, y, TrainingSpec(), round_number)
    after = evaluate(spec, params, x, y)
    assert after["loss"] < before["loss"] - 0.2 and after["accuracy"] > 0.75, (before, after)


# ---- regression ----


def test_a_regression_mlp_learns_a_line():
    spec = ModelSpec(n_features=1, n_classes=1, task="regression", hidden=[16])
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(400, 1)).astype(np.float32)
    y = 2 * x[:, 0] + 1
    params = fitted(spec, x)
    before = evaluate(spec, params, x, y)
    assert set(before) == {"rmse", "mae", "r2", "loss"}
    for round_number in range(1, 6):
        params, result = train_local(spec, params, x, y.reshape(-1, 1), TrainingSpec(learning_rate=0.02), round_number)
    after = evaluate(spec, params, x, y)
    assert after["rmse"] < 0.25 < before["rmse"], (before, after)
    assert after["r2"] > 0.98 and math.isclose(after["loss"], after["rmse"] ** 2, rel_tol=1e-9)
    values = predict(spec, params, x[:4])
    assert values.shape == (4,)
    np.testing.assert_allclose(values, 2 * x[:4, 0] + 1, atol=0.5)
    model = build_model(spec)
    set_params(model, params)
    with torch.no_grad():
        served = serving_model(spec, model)(torch.tensor(x[:4]))
    np.testing.assert_allclose(served.numpy(), values, rtol=1e-5)


def test_serving_a_classifier_returns_probabilities():
    spec = ModelSpec(n_features=3, n_classes=4)
    with torch.no_grad():
        proba = serving_model(spec, build_model(spec))(torch.zeros(2, 3, dtype=torch.float64))
    assert proba.shape == (2, 4)
    np.testing.assert_allclose(proba.sum(dim=1).numpy(), 1.0, rtol=1e-6)


# ---- buffers ----


def test_batch_norm_buffers_travel_as_float32_and_come_back_exactly():
    spec = ModelSpec(
        kind="layers",
        n_features=5,
        n_classes=2,
        layers=[{"type": "linear", "out_features": 4}, {"type": "batchnorm1d"}, {"type": "relu"}],
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(61, 5)).astype(np.float32)  # 61 = 32 + 29: two batches, then one of 29
    y = rng.integers(0, 2, size=61)
    params, _ = train_local(spec, get_params(build_model(spec)), x, y, TrainingSpec(local_epochs=3))
    layout = parameter_layout(spec)
    for name in ("body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"):
        assert name in params and layout[name][1] == "float32" and params[name].dtype == np.float32
    assert params["body.1.num_batches_tracked"] == 6.0  # 3 epochs of 2 batches
    assert not np.allclose(params["body.1.running_mean"], 0.0)

    model = build_model(spec)
    set_params(model, params)
    state = model.state_dict()
    assert state["body.1.num_batches_tracked"].dtype == torch.int64 and int(state["body.1.num_batches_tracked"]) == 6
    again = get_params(model)
    assert all(np.array_equal(again[k], params[k]) for k in params)
    set_params(model, {**params, "body.1.num_batches_tracked": np.array(6.4, dtype=np.float32)})  # averaged: rounded
    assert int(model.state_dict()["body.1.num_batches_tracked"]) == 6


def test_fedavg_averages_batch_norm_statistics_by_examples():
    spec = ModelSpec(kind="layers", n_features=3, n_classes=2, layers=[{"type": "batchnorm1d"}])
    base = get_params(build_model(spec))
    a = {**base, "body.0.running_mean": np.array([1.0, 1.0, 1.0], np.float32)}
    b = {**base, "body.0.running_mean": np.array([5.0, 3.0, 1.0], np.float32)}
    out = build_strategy("fedavg").aggregate(1, base, [ClientUpdate("a", a, 30), ClientUpdate("b", b, 10)])
    np.testing.assert_allclose(out["body.0.running_mean"], [2.0, 1.5, 1.0])
    model = build_model(spec)
    set_params(model, out)  # the aggregate loads back into the model
    np.testing.assert_allclose(model.state_dict()["body.0.running_mean"].numpy(), [2.0, 1.5, 1.0])


def test_a_single_row_last_batch_joins_the_one_before_when_batch_norm_trains():
    spec = ModelSpec(kind="layers", n_features=2, n_classes=2, layers=[{"type": "batchnorm1d"}])
    x = np.random.default_rng(0).normal(size=(33, 2)).astype(np.float32)  # 32 + 1 would fail in batch norm
    params, result = train_local(spec, get_params(build_model(spec)), x, np.arange(33) % 2, TrainingSpec())
    assert result.num_examples == 33 and params["body.0.num_batches_tracked"] == 1.0


# ---- plug-ins ----

PLUGIN_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    CALLS = []

    def tiny(spec, width=8):
        channels = spec.row_shape[0]
        return nn.Sequential(
            nn.Conv2d(channels, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(2 * spec.row_shape[1] * spec.row_shape[2], width), nn.ReLU(), nn.Linear(width, spec.n_classes),
        )

    def counted_loss(outputs, targets):
        CALLS.append(len(targets))
        return nn.functional.cross_entropy(outputs, targets)

    tiny.loss = counted_loss

    def wrong_shape(spec):
        return nn.Flatten()
    """
)


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A real installed distribution ``consortia-tiny 1.2.0`` on sys.path, registering two models."""
    module = f"tiny_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN_SOURCE)
    info = tmp_path / "consortia_tiny-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: consortia-tiny\nVersion: 1.2.0\n")
    (info / "entry_points.txt").write_text(
        f"[consortia.models]\ntiny-cnn = {module}:tiny\nwrong-shape = {module}:wrong_shape\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    sys.modules.pop(module, None)


def plugin_spec(name: str = "tiny-cnn", version: str = "1.2.0", **options) -> ModelSpec:
    return ModelSpec(
        kind="plugin",
        n_features=64,
        n_classes=3,
        input_shape=[1, 8, 8],
        plugin={"name": name, "version": version, "options": options},
    )


def test_a_plugin_model_is_found_built_with_its_options_and_trained_with_its_loss(plugin_dist):
    assert "tiny-cnn==1.2.0" in installed_plugins()
    plugin = load_plugin(plugin_spec().plugin)
    assert plugin.distribution == "consortia-tiny" and plugin.loss is not None
    spec = plugin_spec(width=5)
    layout = parameter_layout(spec)  # what the coordinator builds too
    assert list(layout)[:2] == ["standardize.mean", "standardize.scale"]
    assert layout["body.3.weight"] == ((5, 128), "float32")
    a, b = get_params(build_model(spec)), get_params(build_model(spec))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded like every model

    x, y = digits_like(120)
    params = standardization.fit_rows(a, x)
    before = evaluate(spec, params, x, y)
    params, result = train_local(spec, params, x, y, TrainingSpec(local_epochs=3), 1)
    assert sys.modules[plugin_dist].CALLS  # its own loss was used
    assert evaluate(spec, params, x, y)["loss"] < before["loss"]
    with pytest.raises(ConfigError, match="brings its own loss"):
        train_local(spec, params, x, y, TrainingSpec(class_weights=[1.0, 1.0, 1.0]), 1)


def test_a_plugin_at_another_version_is_refused(plugin_dist):
    with pytest.raises(
        ConfigError, match=r"plug-in model 'tiny-cnn' is version 1.2.0 here, the federation asks for 1.3.0"
    ):
        build_model(plugin_spec(version="1.3.0"))


def test_a_missing_plugin_is_refused_naming_what_is_installed(plugin_dist):
    with pytest.raises(
        ConfigError, match=r"plug-in model 'huge-cnn' is not installed here \(installed plug-ins: \[.*'tiny-cnn==1.2.0'"
    ):
        parameter_layout(plugin_spec(name="huge-cnn"))


def test_a_plugin_missing_everywhere_is_refused(monkeypatch):
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **_: [])
    with pytest.raises(
        ConfigError, match=r"plug-in model 'tiny-cnn' is not installed here \(installed plug-ins: \[\]\)"
    ):
        build_model(plugin_spec())


def test_a_plugin_with_the_wrong_output_or_options_is_refused(plugin_dist):
    with pytest.raises(ConfigError, match=r"'wrong-shape' returns \[2, 64\] .* expected \[2, 3\]"):
        build_model(plugin_spec(name="wrong-shape"))
    with pytest.raises(ConfigError, match=r"'tiny-cnn' 1.2.0 failed to build with options \{'depth': 3\}"):
        build_model(plugin_spec(depth=3))

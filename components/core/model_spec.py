"""What model every party builds: the family and its shape, sent (as JSON) in every request.

Three families (``kind``), each behind the same two first steps, so the coordinator can fit input
standardisation from federated sums whatever the family:

1. ``standardize``: ``(x - standardize.mean) / standardize.scale`` on the flattened input of ``n_features``
   columns (skipped, but still carried and fitted, when ``standardize`` is False: for index inputs);
2. a reshape of each row to ``input_shape`` (``[n_features]`` when not given);
3. the body, named ``body``:

   - ``mlp``: ``hidden`` ReLU layers, then a linear layer to ``n_classes`` (on the flat input);
   - ``layers``: the declared ``layers`` (a typed list of standard layers, below), then a head;
   - ``plugin``: the module a registered plug-in factory returns (see ``components.ml.plugins``).

Layers list only what they choose: input sizes (``in_features``, ``in_channels``, normalised shape, batch-norm
features) are inferred from the previous layer's output shape. Shapes are checked here, in plain shape
arithmetic, when the spec is built; a mistake is a ``ValueError`` naming the layer by index
(``layers[2] (conv2d): ...``).

The head: the body must end in ``n_classes`` outputs per row. Unless the declared layers already end in a
shape of exactly ``[n_classes]``, the body gets a ``flatten`` (if the last output has more than one
dimension) and then ``linear(out_features=n_classes)``. An empty ``layers`` list is a linear model.

Outputs are logits for classification (``binary`` uses 2 logits and a softmax, like ``multiclass``) and one
value for ``regression`` (``n_classes == 1``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.tasks import TaskKind

Shape = tuple[int, ...]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Linear(_Layer):
    """``nn.Linear`` on the last dimension; ``in_features`` is that dimension."""

    type: Literal["linear"] = "linear"
    out_features: Positive
    bias: bool = True


class Conv1d(_Layer):
    """On ``[channels, length]``; ``in_channels`` is inferred."""

    type: Literal["conv1d"] = "conv1d"
    out_channels: Positive
    kernel_size: Positive
    stride: Positive = 1
    padding: int = Field(default=0, ge=0)


class Conv2d(_Layer):
    """On ``[channels, height, width]``; ``in_channels`` is inferred. Sizes are one int or ``[h, w]``."""

    type: Literal["conv2d"] = "conv2d"
    out_channels: Positive
    kernel_size: Positive | tuple[Positive, Positive]
    stride: Positive | tuple[Positive, Positive] = 1
    padding: NonNegative | tuple[NonNegative, NonNegative] = 0


class MaxPool1d(_Layer):
    type: Literal["maxpool1d"] = "maxpool1d"
    kernel_size: Positive
    stride: Positive | None = None  # None: the kernel size


class AvgPool1d(_Layer):
    type: Literal["avgpool1d"] = "avgpool1d"
    kernel_size: Positive
    stride: Positive | None = None


class MaxPool2d(_Layer):
    type: Literal["maxpool2d"] = "maxpool2d"
    kernel_size: Positive | tuple[Positive, Positive]
    stride: Positive | tuple[Positive, Positive] | None = None


class AvgPool2d(_Layer):
    type: Literal["avgpool2d"] = "avgpool2d"
    kernel_size: Positive | tuple[Positive, Positive]
    stride: Positive | tuple[Positive, Positive] | None = None


class BatchNorm1d(_Layer):
    """On ``[features]`` or ``[channels, length]``; running statistics are buffers (averaged like weights)."""

    type: Literal["batchnorm1d"] = "batchnorm1d"
    momentum: float = Field(default=0.1, gt=0, le=1)


class BatchNorm2d(_Layer):
    """On ``[channels, height, width]``."""

    type: Literal["batchnorm2d"] = "batchnorm2d"
    momentum: float = Field(default=0.1, gt=0, le=1)


class LayerNorm(_Layer):
    """Normalises over the last ``dims`` dimensions (their sizes are inferred)."""

    type: Literal["layernorm"] = "layernorm"
    dims: Positive = 1
    elementwise_affine: bool = True


class Dropout(_Layer):
    type: Literal["dropout"] = "dropout"
    p: float = Field(default=0.5, ge=0, lt=1)


class Embedding(_Layer):
    """Looks up each input value as an index in ``[0, num_embeddings)``: ``shape -> shape + [embedding_dim]``.

    Indices are the raw input: an embedding may only follow ``reshape``/``flatten`` layers, and the spec must
    say ``standardize: false``.
    """

    type: Literal["embedding"] = "embedding"
    num_embeddings: Positive
    embedding_dim: Positive


class Activation(_Layer):
    """Elementwise; ``exp`` is meant for an output (a Poisson GLM's mean), not between layers."""

    type: Literal["relu", "gelu", "tanh", "sigmoid", "exp"]


class LeakyReLU(_Layer):
    type: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = 0.01


class Flatten(_Layer):
    """Each row to one dimension."""

    type: Literal["flatten"] = "flatten"


class Reshape(_Layer):
    """Each row to ``shape`` (at most one ``-1``, inferred); the batch dimension is kept."""

    type: Literal["reshape"] = "reshape"
    shape: list[int] = Field(min_length=1)


Layer = Annotated[
    Linear
    | Conv1d
    | Conv2d
    | MaxPool1d
    | AvgPool1d
    | MaxPool2d
    | AvgPool2d
    | BatchNorm1d
    | BatchNorm2d
    | LayerNorm
    | Dropout
    | Embedding
    | Activation
    | LeakyReLU
    | Flatten
    | Reshape,
    Field(discriminator="type"),
]
LAYER_TYPES = (
    "linear",
    "conv1d",
    "conv2d",
    "maxpool1d",
    "avgpool1d",
    "maxpool2d",
    "avgpool2d",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "dropout",
    "embedding",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "exp",
    "leaky_relu",
    "flatten",
    "reshape",
)


class PluginRef(BaseModel):
    """A model registered by an installed package under the entry-point group ``consortia.models``.

    ``version`` is the version of the distribution that registers ``name``; every party and the coordinator
    must have exactly that version installed. ``options`` are passed to the factory as keyword arguments.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    options: dict[str, Any] = Field(default_factory=dict)


# ---- shape arithmetic (no batch dimension) ----


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _rank(shape: Shape, ranks: tuple[int, ...], what: str) -> None:
    if len(shape) not in ranks:
        wanted = " or ".join(f"{r}-d" for r in ranks)
        raise ValueError(f"expects {wanted} input per row ({what}), got shape {list(shape)}")


def _slide(size: int, kernel: int, stride: int, padding: int, axis: str) -> int:
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} (padding {padding}) is larger than the input's {axis} {size}")
    return out


def _reshaped(shape: Shape, target: list[int]) -> Shape:
    size = math.prod(shape)
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1 or any(d < 1 and d != -1 for d in target):
        raise ValueError(f"shape {target} may hold positive sizes and at most one -1")
    known = math.prod(d for d in target if d != -1)
    if unknown:
        if size % known:
            raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target}")
        return tuple(size // known if d == -1 else d for d in target)
    if known != size:
        raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target} ({known} values)")
    return tuple(target)


def output_shape(layer: _Layer, shape: Shape) -> Shape:
    """The shape of one row after ``layer``, or ``ValueError`` saying why ``layer`` cannot take ``shape``."""
    match layer:
        case Linear():
            return (*shape[:-1], layer.out_features)
        case Conv1d():
            _rank(shape, (2,), "[channels, length]")
            return (layer.out_channels, _slide(shape[1], layer.kernel_size, layer.stride, layer.padding, "length"))
        case Conv2d():
            _rank(shape, (3,), "[channels, height, width]")
            (kh, kw), (sh, sw), (ph, pw) = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
            return (layer.out_channels, _slide(shape[1], kh, sh, ph, "height"), _slide(shape[2], kw, sw, pw, "width"))
        case MaxPool1d() | AvgPool1d():
            _rank(shape, (2,), "[channels, length]")
            stride = layer.stride or layer.kernel_size
            return (shape[0], _slide(shape[1], layer.kernel_size, stride, 0, "length"))
        case MaxPool2d() | AvgPool2d():
            _rank(shape, (3,), "[channels, height, width]")
            (kh, kw) = _pair(layer.kernel_size)
            (sh, sw) = _pair(layer.stride or layer.kernel_size)
            return (shape[0], _slide(shape[1], kh, sh, 0, "height"), _slide(shape[2], kw, sw, 0, "width"))
        case BatchNorm1d():
            _rank(shape, (1, 2), "[features] or [channels, length]")
            return shape
        case BatchNorm2d():
            _rank(shape, (3,), "[channels, height, width]")
            return shape
        case LayerNorm():
            if len(shape) < layer.dims:
                raise ValueError(f"normalises the last {layer.dims} dimensions of a {len(shape)}-d input")
            return shape
        case Embedding():
            return (*shape, layer.embedding_dim)
        case Flatten():
            return (math.prod(shape),)
        case Reshape():
            return _reshaped(shape, layer.shape)
        case Dropout() | Activation() | LeakyReLU():
            return shape
    raise ValueError(f"unknown layer {layer!r}")


def plan_layers(input_shape: Shape, layers: list[Any]) -> list[tuple[Any, Shape, Shape]]:
    """Each layer with the row shape it takes and the one it gives; errors name the layer by index."""
    planned: list[tuple[Any, Shape, Shape]] = []
    shape = tuple(input_shape)
    for index, layer in enumerate(layers):
        try:
            out = output_shape(layer, shape)
        except ValueError as error:
            raise ValueError(f"layers[{index}] ({layer.type}): {error}") from None
        planned.append((layer, shape, out))
        shape = out
    return planned


def head(last: Shape, n_classes: int) -> list[Any]:
    """What is appended so that the body ends in ``[n_classes]``: nothing, or [flatten,] linear(n_classes)."""
    if last == (n_classes,):
        return []
    return ([Flatten()] if len(last) > 1 else []) + [Linear(out_features=n_classes)]


class ModelSpec(BaseModel):
    """What to build, from ``n_features`` input columns to ``n_classes`` outputs (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mlp", "layers", "plugin"] = "mlp"
    n_features: int = Field(gt=0, description="flattened input width: the contract's feature columns")
    n_classes: int = Field(ge=1, description="outputs: the classes, or 1 for regression")
    task: TaskKind = "multiclass"
    input_shape: list[Positive] | None = Field(
        default=None, description="each row reshaped to this (e.g. [1, 8, 8]); None = [n_features]"
    )
    standardize: bool = Field(
        default=True, description="apply the fitted standardisation (False for index inputs; the tensors stay)"
    )
    hidden: list[Positive] = Field(default_factory=lambda: [32], description="kind mlp: hidden layer widths")
    layers: list[Layer] = Field(default_factory=list, description="kind layers: the body before the head")
    plugin: PluginRef | None = Field(default=None, description="kind plugin: the registered model")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        for problem in family_problems(self.kind, self.layers, self.plugin):
            raise ValueError(problem)
        if self.task == "regression" and self.n_classes != 1:
            raise ValueError(f"a regression model has 1 output, not n_classes={self.n_classes}")
        if self.task == "binary" and self.n_classes != 2:
            raise ValueError(f"a binary classifier has 2 outputs (2 logits), not n_classes={self.n_classes}")
        if self.task == "multiclass" and self.n_classes < 2:
            raise ValueError(f"a multiclass classifier needs n_classes >= 2, not {self.n_classes}")
        if self.input_shape is not None and math.prod(self.input_shape) != self.n_features:
            raise ValueError(
                f"input_shape {self.input_shape} holds {math.prod(self.input_shape)} values per row, "
                f"but there are n_features={self.n_features}"
            )
        if self.kind != "plugin":
            self.plan()  # raises on a shape mistake, naming the layer
        return self

    @property
    def row_shape(self) -> Shape:
        """The shape each row is reshaped to before the body."""
        return tuple(self.input_shape) if self.input_shape is not None else (self.n_features,)

    def body_layers(self) -> list[Any]:
        """The layers of the body, head included (kinds mlp and layers)."""
        if self.kind == "mlp":
            declared: list[Any] = []
            for width in self.hidden:
                declared += [Linear(out_features=width), Activation(type="relu")]
            return [*declared, Linear(out_features=self.n_classes)]
        if self.kind == "layers":
            planned = plan_layers(self.row_shape, self.layers)
            last = planned[-1][2] if planned else self.row_shape
            return [*self.layers, *head(last, self.n_classes)]
        raise ValueError("a plug-in model's body is whatever its factory builds")

    def plan(self) -> list[tuple[Any, Shape, Shape]]:
        """Every body layer with its input and output row shapes (kinds mlp and layers).

        An mlp works on the flat input, whatever ``input_shape`` says."""
        start = (self.n_features,) if self.kind == "mlp" else self.row_shape
        planned = plan_layers(start, self.body_layers())
        if self.kind == "layers":
            for index, (layer, _, _) in enumerate(planned):
                if isinstance(layer, Embedding):
                    if any(not isinstance(earlier, Reshape | Flatten) for earlier in self.layers[:index]):
                        raise ValueError(
                            f"layers[{index}] (embedding): takes the raw input as indices, so only reshape or "
                            "flatten layers may come before it"
                        )
                    if self.standardize:
                        raise ValueError(
                            f"layers[{index}] (embedding): its inputs are indices; set standardize: false so "
                            "they are not standardised"
                        )
        return planned


def family_problems(kind: str, layers: list[Any], plugin: PluginRef | None) -> list[str]:
    """Mistakes in which fields a model family reads (shared by ModelSpec and the config's ModelConfig)."""
    problems: list[str] = []
    if kind == "plugin" and plugin is None:
        problems.append("kind 'plugin' needs plugin: {name, version, options}")
    if kind != "plugin" and plugin is not None:
        problems.append(f"plugin is only read when kind is 'plugin', not {kind!r}")
    if kind != "layers" and layers:
        problems.append(f"layers are only read when kind is 'layers', not {kind!r}")
    return problems

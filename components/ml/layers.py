"""Torch modules for the declared layers of a ModelSpec (``components.core.model_spec``), sizes inferred."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from components.core import model_spec as ms


class Exp(nn.Module):
    """``exp`` of the input: the inverse of the log link (a Poisson GLM's served mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class Reshape(nn.Module):
    """Each row to ``shape``; the batch dimension is kept."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).unflatten(1, self.shape)

    def extra_repr(self) -> str:
        return f"shape={list(self.shape)}"


class IndexEmbedding(nn.Embedding):
    """``nn.Embedding`` over float inputs holding whole numbers (the wire carries float32 rows)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.round(x).long())


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def torch_layer(layer: Any, shape: ms.Shape) -> nn.Module:
    """The module for ``layer`` taking rows of ``shape`` (already checked by ``ModelSpec.plan``)."""
    match layer:
        case ms.Linear():
            return nn.Linear(shape[-1], layer.out_features, bias=layer.bias)
        case ms.Conv1d():
            return nn.Conv1d(shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
        case ms.Conv2d():
            return nn.Conv2d(
                shape[0], layer.out_channels, _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
            )
        case ms.MaxPool1d():
            return nn.MaxPool1d(layer.kernel_size, layer.stride or layer.kernel_size)
        case ms.AvgPool1d():
            return nn.AvgPool1d(layer.kernel_size, layer.stride or layer.kernel_size)
        case ms.MaxPool2d():
            return nn.MaxPool2d(_pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size))
        case ms.AvgPool2d():
            return nn.AvgPool2d(_pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size))
        case ms.BatchNorm1d():
            return nn.BatchNorm1d(shape[0], momentum=layer.momentum)
        case ms.BatchNorm2d():
            return nn.BatchNorm2d(shape[0], momentum=layer.momentum)
        case ms.LayerNorm():
            return nn.LayerNorm(list(shape[-layer.dims :]), elementwise_affine=layer.elementwise_affine)
        case ms.Dropout():
            return nn.Dropout(layer.p)
        case ms.Embedding():
            return IndexEmbedding(layer.num_embeddings, layer.embedding_dim)
        case ms.LeakyReLU():
            return nn.LeakyReLU(layer.negative_slope)
        case ms.Activation():
            if layer.type == "exp":
                return Exp()
            return {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[layer.type]()
        case ms.Flatten():
            return nn.Flatten()
        case ms.Reshape():
            return Reshape(ms.output_shape(layer, shape))
    raise ValueError(f"no torch module for layer {layer!r}")


def build_body(spec: ms.ModelSpec) -> nn.Sequential:
    """The body of an mlp or layers spec, head included, one module per planned layer."""
    return nn.Sequential(*(torch_layer(layer, shape) for layer, shape, _ in spec.plan()))

"""Keras activations by name, evaluated in place on float32 numpy arrays.

Each function overwrites its argument (which may be a strided view) with the activation of it.
The definitions follow Keras 3 with the TensorFlow backend, including its defaults:
`hard_sigmoid(x) = relu6(x + 3) / 6`, `leaky_relu` with slope 0.2 and the exact (erf) `gelu`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from consumer.model.step import Float32Array

InPlace = Callable[[Float32Array], None]

_SELU_ALPHA = np.float32(1.6732632423543772848170429916717)
_SELU_SCALE = np.float32(1.0507009873554804934193349852946)
_LEAKY_RELU_SLOPE = np.float32(0.2)
# Made once: a numpy scalar built per call cost about a microsecond, as much as a small ufunc.
_ZERO, _HALF, _ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
_THREE, _SIX = np.float32(3.0), np.float32(6.0)


def linear(x: Float32Array) -> None:
    del x


def sigmoid(x: Float32Array) -> None:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: numpy's SIMD tanh is cheaper than exp plus a division.
    np.multiply(x, _HALF, out=x)
    sigmoid_from_half(x)


def sigmoid_from_half(x: Float32Array) -> None:
    """Sigmoid of `2 * x`: for gate weights pre-scaled by 1/2 so the halving costs nothing."""
    np.tanh(x, out=x)
    half_tanh_to_sigmoid(x)


def half_tanh_to_sigmoid(x: Float32Array) -> None:
    """Turns tanh(v / 2) into sigmoid(v)."""
    np.multiply(x, _HALF, out=x)
    np.add(x, _HALF, out=x)


def hard_sigmoid(x: Float32Array) -> None:
    np.add(x, _THREE, out=x)
    np.clip(x, _ZERO, _SIX, out=x)
    np.divide(x, _SIX, out=x)


def tanh(x: Float32Array) -> None:
    np.tanh(x, out=x)


def relu(x: Float32Array) -> None:
    np.maximum(x, _ZERO, out=x)


def relu6(x: Float32Array) -> None:
    np.clip(x, _ZERO, _SIX, out=x)


def leaky_relu(x: Float32Array) -> None:
    np.maximum(x, x * _LEAKY_RELU_SLOPE, out=x)


def elu_with(x: Float32Array, alpha: np.float32) -> None:
    negative = np.minimum(x, _ZERO)
    np.expm1(negative, out=negative)
    if alpha != 1.0:
        np.multiply(negative, alpha, out=negative)
    np.maximum(x, _ZERO, out=x)
    np.add(x, negative, out=x)


def elu(x: Float32Array) -> None:
    elu_with(x, _ONE)


def selu(x: Float32Array) -> None:
    elu_with(x, _SELU_ALPHA)
    np.multiply(x, _SELU_SCALE, out=x)


def softplus(x: Float32Array) -> None:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which neither overflows nor loses small values.
    tail = np.abs(x)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    np.maximum(x, _ZERO, out=x)
    np.add(x, tail, out=x)


def softsign(x: Float32Array) -> None:
    denominator = np.abs(x)
    np.add(denominator, _ONE, out=denominator)
    np.divide(x, denominator, out=x)


def silu(x: Float32Array) -> None:
    gate = x.copy()
    sigmoid(gate)
    np.multiply(x, gate, out=x)


def _erf(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Chebyshev fit of erfc (Numerical Recipes `erfcc`): relative error below 1.2e-7 everywhere.
    z = np.abs(v)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223
    coefficients = (
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    )
    tail = np.zeros_like(z)
    for c in reversed(coefficients):
        tail = (tail + c) * t
    erfc = t * np.exp(poly + tail)
    return np.where(v >= 0.0, 1.0 - erfc, erfc - 1.0)


def gelu(x: Float32Array) -> None:
    wide = x.astype(np.float64)
    wide *= 0.5 * (1.0 + _erf(wide / math.sqrt(2.0)))
    np.copyto(x, wide, casting="same_kind")


def exponential(x: Float32Array) -> None:
    np.exp(x, out=x)


def softmax(x: Float32Array) -> None:
    np.subtract(x, x.max(axis=-1, keepdims=True), out=x)
    np.exp(x, out=x)
    np.divide(x, x.sum(axis=-1, keepdims=True), out=x)


def log_softmax(x: Float32Array) -> None:
    np.subtract(x, x.max(axis=-1, keepdims=True), out=x)
    np.subtract(x, np.log(np.exp(x).sum(axis=-1, keepdims=True)), out=x)


def mish(x: Float32Array) -> None:
    gate = x.copy()
    softplus(gate)
    np.tanh(gate, out=gate)
    np.multiply(x, gate, out=x)


def hard_silu(x: Float32Array) -> None:
    gate = x.copy()
    hard_sigmoid(gate)
    np.multiply(x, gate, out=x)


BY_NAME: dict[str, InPlace] = {
    "linear": linear,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": tanh,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "softplus": softplus,
    "softsign": softsign,
    "silu": silu,
    "swish": silu,
    "gelu": gelu,
    "exponential": exponential,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "mish": mish,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
}

SUPPORTED: frozenset[str] = frozenset(BY_NAME)


def get(name: str) -> InPlace:
    """The in-place function for a supported activation name; KeyError otherwise."""
    return BY_NAME[name]

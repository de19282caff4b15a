"""Per-step layers in numpy, applied to a `(batch, features)` block.

`apply(x, owned)` returns the result and whether it is a buffer of ours. When `owned` is true
`x` is a buffer of ours and may be overwritten; otherwise it belongs to the caller (the input
sample or a recurrent state) and is only read.
"""

from __future__ import annotations

import numpy as np

from consumer.model import activations
from consumer.model.row_blocks import BufferProducts, Matmul, make_matmul, padded_rows
from consumer.model.specs import (
    ActivationSpec,
    AffineSpec,
    DenseSpec,
    EluSpec,
    LayerNormSpec,
    PerStepSpec,
    ReluSpec,
)
from consumer.model.step import Float32Array

_F32 = np.float32
_ZERO = _F32(0.0)  # made once: building a numpy scalar per call costs as much as a small ufunc


class PerStepOp:
    def __init__(self, width: int) -> None:
        self.width = width
        self.capacity = 0
        self.buffer = np.empty((0, width), _F32)

    def ensure(self, capacity: int) -> None:
        if capacity > self.capacity:
            self.capacity = capacity
            self.buffer = np.empty((capacity, self.width), _F32)

    @property
    def matmuls(self) -> tuple[Matmul, ...]:
        return ()

    def target(self, x: Float32Array, owned: bool) -> Float32Array:
        """Where an element-wise op writes: in place when allowed, else into our buffer."""
        return x if owned else self.buffer[: x.shape[0]]

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        raise NotImplementedError


class DenseOp(PerStepOp):
    """The product runs over whole row blocks (`consumer.model.row_blocks`): the input is copied
    into a padded buffer of ours first."""

    def __init__(self, spec: DenseSpec) -> None:
        super().__init__(spec.units)
        self.matmul = make_matmul(spec.kernel)
        self.inputs = np.zeros((0, spec.kernel.shape[0]), _F32)
        self.bias = spec.bias
        self.activation = activations.get(spec.activation)
        self.products = BufferProducts(self.matmul, self.inputs, self.buffer)

    @property
    def matmuls(self) -> tuple[Matmul, ...]:
        return (self.matmul,)

    def ensure(self, capacity: int) -> None:
        capacity = padded_rows(capacity)
        if capacity > self.capacity:
            self.inputs = np.zeros((capacity, self.inputs.shape[1]), _F32)
            super().ensure(capacity)
            self.products = BufferProducts(self.matmul, self.inputs, self.buffer)

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        b = x.shape[0]
        np.copyto(self.inputs[:b], x)
        self.products(padded_rows(b))
        out = self.buffer[:b]
        if self.bias is not None:
            np.add(out, self.bias, out=out)
        self.activation(out)
        return out


class ActivationOp(PerStepOp):
    def __init__(self, spec: ActivationSpec | EluSpec, width: int) -> None:
        super().__init__(width)
        if isinstance(spec, EluSpec):
            alpha = _F32(spec.alpha)
            self.function: activations.InPlace = lambda x: activations.elu_with(x, alpha)
        else:
            self.function = activations.get(spec.activation)

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        out = self.target(x, owned)
        if out is not x:
            np.copyto(out, x)
        self.function(out)
        return out


class ReluOp(PerStepOp):
    """Keras `relu(x, negative_slope, max_value, threshold)`; LeakyReLU is the common case."""

    def __init__(self, spec: ReluSpec, width: int) -> None:
        super().__init__(width)
        self.slope = _F32(spec.negative_slope)
        self.max_value = None if spec.max_value is None else _F32(spec.max_value)
        self.threshold = _F32(spec.threshold)
        self.leaky = self.max_value is None and spec.threshold == 0.0 and spec.negative_slope < 1.0
        self.scratch = np.empty((0, width), _F32)

    def ensure(self, capacity: int) -> None:
        if capacity > self.capacity:
            self.scratch = np.empty((capacity, self.width), _F32)
        super().ensure(capacity)

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        out = self.target(x, owned)
        scratch = self.scratch[: x.shape[0]]
        if self.leaky:
            # For a slope below 1 (negative included), leaky_relu(x) = max(x, slope * x).
            np.multiply(x, self.slope, out=scratch)
            np.maximum(x, scratch, out=out)
            return out
        # relu(x) = clip(x if x > threshold else 0, 0, max_value) - slope * relu(threshold - x)
        np.subtract(self.threshold, x, out=scratch)
        np.maximum(scratch, _ZERO, out=scratch)
        np.multiply(scratch, self.slope, out=scratch)
        if self.threshold != 0.0:
            np.copyto(out, np.where(x > self.threshold, x, _ZERO))
        else:
            np.maximum(x, _ZERO, out=out)
        if self.max_value is not None:
            np.clip(out, _ZERO, self.max_value, out=out)
        np.subtract(out, scratch, out=out)
        return out


class AffineOp(PerStepOp):
    def __init__(self, spec: AffineSpec) -> None:
        super().__init__(int(spec.scale.shape[0]))
        self.scale = spec.scale
        self.offset = spec.offset

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        out = self.target(x, owned)
        np.multiply(x, self.scale, out=out)
        np.add(out, self.offset, out=out)
        return out


class LayerNormOp(PerStepOp):
    def __init__(self, spec: LayerNormSpec, width: int) -> None:
        super().__init__(width)
        self.spec = spec
        self.epsilon = _F32(spec.epsilon)

    def apply(self, x: Float32Array, owned: bool) -> Float32Array:
        out = self.target(x, owned)
        mean = x.mean(axis=-1, keepdims=True, dtype=_F32)
        centred = x - mean
        variance = np.mean(np.square(centred), axis=-1, keepdims=True, dtype=_F32)
        inv = np.float32(1.0) / np.sqrt(variance + self.epsilon)
        gamma, beta = self.spec.gamma, self.spec.beta
        if self.spec.rms_scaling:
            np.multiply(x, inv, out=out)
            if gamma is not None:
                np.multiply(out, gamma, out=out)
            return out
        # Keras' order: inv = rsqrt(var + eps) * gamma; x * inv + (beta - mean * inv).
        scale = inv * gamma if gamma is not None else inv
        shift = -mean * scale
        if beta is not None:
            shift = shift + beta
        np.multiply(x, scale, out=out)
        np.add(out, shift, out=out)
        return out


def make_op(spec: PerStepSpec, width: int) -> PerStepOp:
    """The op for a per-step layer whose input has `width` features."""
    if isinstance(spec, DenseSpec):
        return DenseOp(spec)
    if isinstance(spec, ActivationSpec | EluSpec):
        return ActivationOp(spec, width)
    if isinstance(spec, ReluSpec):
        return ReluOp(spec, width)
    if isinstance(spec, AffineSpec):
        return AffineOp(spec)
    return LayerNormOp(spec, width)

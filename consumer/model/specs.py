"""The step plan: what a streamable model computes per sample, extracted once from Keras.

Weights are float32 numpy arrays in Keras layout (kernel `(inputs, gates * units)`, gate order
LSTM i, f, c, o and GRU z, r, h). Records holding arrays compare by identity (`eq=False`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from consumer.model.step import Float32Array

RecurrentKind = Literal["lstm", "gru", "simple_rnn"]


@dataclass(frozen=True, eq=False)
class RecurrentSpec:
    name: str
    class_name: str
    kind: RecurrentKind
    units: int
    n_inputs: int
    kernel: Float32Array
    recurrent_kernel: Float32Array
    # LSTM/SimpleRNN: (gates * units,). GRU with reset_after: (2, 3 * units), input then recurrent.
    bias: Float32Array | None
    activation: str
    recurrent_activation: str | None
    reset_after: bool
    return_sequences: bool

    @property
    def use_bias(self) -> bool:
        return self.bias is not None

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.units, self.units) if self.kind == "lstm" else (self.units,)


@dataclass(frozen=True, eq=False)
class DenseSpec:
    name: str
    class_name: str
    kernel: Float32Array
    bias: Float32Array | None
    activation: str

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])


@dataclass(frozen=True)
class ActivationSpec:
    """An element-wise (or last-axis softmax) activation given by its Keras name."""

    name: str
    class_name: str
    activation: str


@dataclass(frozen=True)
class ReluSpec:
    """`ReLU` and `LeakyReLU`: Keras' `relu(x, negative_slope, max_value, threshold)`."""

    name: str
    class_name: str
    negative_slope: float
    max_value: float | None
    threshold: float


@dataclass(frozen=True)
class EluSpec:
    name: str
    class_name: str
    alpha: float


@dataclass(frozen=True, eq=False)
class AffineSpec:
    """`BatchNormalization` at inference, folded to `x * scale + offset` per feature."""

    name: str
    class_name: str
    scale: Float32Array
    offset: Float32Array


@dataclass(frozen=True, eq=False)
class LayerNormSpec:
    name: str
    class_name: str
    gamma: Float32Array | None
    beta: Float32Array | None
    epsilon: float
    # Keras' deprecated `rms_scaling=True`: x * rsqrt(var(x) + epsilon) * gamma, no centring.
    rms_scaling: bool


@dataclass(frozen=True)
class IdentitySpec:
    """A layer that is the identity at inference (dropout, noise): listed, never computed."""

    name: str
    class_name: str


PerStepSpec = DenseSpec | ActivationSpec | ReluSpec | EluSpec | AffineSpec | LayerNormSpec
LayerSpec = RecurrentSpec | PerStepSpec | IdentitySpec


@dataclass(frozen=True)
class StepPlan:
    """Everything needed to advance a model one sample at a time, in model order."""

    source: str
    n_features: int
    n_outputs: int
    # The time length the model was built for (None when the model accepts any length).
    trained_length: int | None
    layers: tuple[LayerSpec, ...]
    version: str

    # Cached: the step checks its states against these on every call (the plan never changes).
    @cached_property
    def recurrent(self) -> tuple[RecurrentSpec, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, RecurrentSpec))

    @cached_property
    def state_sizes(self) -> tuple[int, ...]:
        return tuple(size for layer in self.recurrent for size in layer.state_sizes)

    @property
    def stateless(self) -> bool:
        """True for a purely per-step model: its output at t depends on sample t only."""
        return not self.recurrent


class PlanBacked:
    """The `StepFunction` properties of a backend, read off its plan."""

    plan: StepPlan

    @property
    def n_features(self) -> int:
        return self.plan.n_features

    @property
    def n_outputs(self) -> int:
        return self.plan.n_outputs

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.plan.state_sizes

    @property
    def version(self) -> str:
        return self.plan.version

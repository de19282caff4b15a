"""Batched explicit-state recurrent steps in numpy: LSTM, GRU (both reset_after forms), SimpleRNN.

Every cell computes its gate pre-activations with one matmul of `[x, h, 1]` against a stacked
`[kernel; recurrent_kernel; bias]` matrix, laid out as `(gates, rows, units)` so that each gate
block is contiguous (element-wise numpy is several times slower on strided column slices).
Gates under a sigmoid have their weight columns pre-scaled by 1/2, because
`sigmoid(v) = (1 + tanh(v / 2)) / 2` and numpy's tanh is the cheapest transcendental it has.
Buffers hold `capacity` rows and are reused; the states passed in are updated in place. Products
run in whole blocks of rows (`consumer.model.row_blocks`), so a row's result never depends on the
batch it came in; the rows past the batch in the last block are padding whose results are unused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from consumer.model import activations, compiled_cells
from consumer.model.row_blocks import BufferProducts, Matmul, make_matmul, padded_rows
from consumer.model.specs import RecurrentSpec
from consumer.model.step import Float32Array

if compiled_cells.BUILT:
    from consumer.model import _cell_loops

_F32 = np.float32


def _gate_activation(name: str) -> tuple[activations.InPlace, float]:
    """The in-place activation for gates and the factor to pre-scale their weights by."""
    if name == "sigmoid":
        return activations.sigmoid_from_half, 0.5
    return activations.get(name), 1.0


def _stack(
    spec: RecurrentSpec, x_part: Float32Array, h_part: Float32Array, bias: Float32Array
) -> Float32Array:
    """`[x_part; h_part; bias]` for one gate: shape (n_inputs + units + 1, units)."""
    return np.concatenate([x_part, h_part, bias[None, :]], axis=0).astype(_F32)


class RecurrentCell:
    """Common buffers: `[x, h, 1]` rows and gate blocks."""

    n_gates: int

    def __init__(self, spec: RecurrentSpec) -> None:
        self.spec = spec
        self.units = spec.units
        self.n_inputs = spec.n_inputs
        self.n_states = len(spec.state_sizes)
        self.activation = activations.get(spec.activation)
        self.weights = self._weights()
        self.matmul = make_matmul(self.weights)
        self.capacity = 0
        self.xh = np.empty((0, self.n_inputs + self.units + 1), _F32)
        self.gates = np.empty((self.n_gates, 0, self.units), _F32)
        self.scratch = np.empty((0, self.units), _F32)
        self.products = BufferProducts(self.matmul, self.xh, self.gates)

    def _weights(self) -> Float32Array:
        raise NotImplementedError

    @property
    def matmuls(self) -> tuple[Matmul, ...]:
        return (self.matmul,)

    def _gate_columns(self, block: int) -> tuple[Float32Array, Float32Array, Float32Array]:
        """Kernel, recurrent kernel and bias columns of Keras gate block `block`."""
        spec, u = self.spec, self.units
        cols = slice(block * u, (block + 1) * u)
        bias = np.zeros(u, _F32) if spec.bias is None else spec.bias.reshape(-1)[cols]
        return spec.kernel[:, cols], spec.recurrent_kernel[:, cols], bias

    def ensure(self, capacity: int) -> None:
        capacity = padded_rows(capacity)
        if capacity <= self.capacity:
            return
        self.capacity = capacity
        # Zeros, not garbage: padding rows are multiplied too, and must stay finite and cheap.
        self.xh = np.zeros((capacity, self.n_inputs + self.units + 1), _F32)
        self.xh[:, -1] = 1.0  # the constant column that multiplies the bias row
        self.gates = np.empty((self.n_gates, capacity, self.units), _F32)
        self.scratch = np.empty((capacity, self.units), _F32)
        self.products = BufferProducts(self.matmul, self.xh, self.gates)

    def _project(self, x: Float32Array, h: Float32Array) -> Float32Array:
        b = x.shape[0]
        np.copyto(self.xh[:b, : self.n_inputs], x)
        np.copyto(self.xh[:b, self.n_inputs : -1], h)
        self.products(padded_rows(b))
        return self.gates[:, :b]

    def run(self, x: Float32Array, states: Sequence[Float32Array]) -> Float32Array:
        """Advances `states` in place by sample `x`; returns this layer's output (the new h)."""
        raise NotImplementedError


class LstmCell(RecurrentCell):
    """`native`: the gates' sigmoids and the new cell state in one C call
    (`consumer.model.compiled_cells`) where the activations are the usual sigmoid and tanh; the
    result is the numpy code's, bit for bit."""

    n_gates = 4

    def __init__(self, spec: RecurrentSpec, native: bool | None = None) -> None:
        super().__init__(spec)
        self.native = compiled_cells.choose(native) and self.fused_tanh

    def _weights(self) -> Float32Array:
        spec = self.spec
        assert spec.recurrent_activation is not None
        self.gate_activation, scale = _gate_activation(spec.recurrent_activation)
        self.fused_tanh = spec.recurrent_activation == "sigmoid" and spec.activation == "tanh"
        # Keras order i, f, c, o; stored as i, f, o, c so the three sigmoid gates are contiguous.
        blocks = [_stack(spec, *self._gate_columns(k)) for k in (0, 1, 3, 2)]
        for k in range(3):
            blocks[k] *= _F32(scale)
        return np.ascontiguousarray(np.stack(blocks))

    def run(self, x: Float32Array, states: Sequence[Float32Array]) -> Float32Array:
        h, c = states
        gates = self._project(x, h)
        scratch = self.scratch[: x.shape[0]]
        if self.fused_tanh:
            np.tanh(gates, out=gates)
        if self.native and c.flags.c_contiguous:
            _cell_loops.lstm_cell(self.gates, x.shape[0], c)
        else:
            if self.fused_tanh:
                activations.half_tanh_to_sigmoid(gates[:3])
            else:
                self.gate_activation(gates[:3])
                self.activation(gates[3])
            i, f, _, g = gates
            np.multiply(c, f, out=c)
            np.multiply(i, g, out=scratch)
            np.add(c, scratch, out=c)
        o = gates[2]
        if self.fused_tanh:
            np.tanh(c, out=scratch)
        else:
            np.copyto(scratch, c)
            self.activation(scratch)
        np.multiply(o, scratch, out=h)
        return h


class GruCell(RecurrentCell):
    """Gate blocks z, r, then the candidate's input part and (reset_after) recurrent part."""

    def __init__(self, spec: RecurrentSpec) -> None:
        self.n_gates = 4 if spec.reset_after else 3
        super().__init__(spec)
        self.candidate_recurrent = make_matmul(spec.recurrent_kernel[:, 2 * spec.units :])
        self.reset_state = np.empty((0, spec.units), _F32)

    def _gate_columns(self, block: int) -> tuple[Float32Array, Float32Array, Float32Array]:
        kernel, recurrent, bias = super()._gate_columns(block)
        if self.spec.bias is not None and self.spec.reset_after:
            # Bias (2, 3u): input row, recurrent row; z and r add both.
            u = self.units
            cols = slice(block * u, (block + 1) * u)
            bias = self.spec.bias[0, cols] + self.spec.bias[1, cols]
        return kernel, recurrent, bias

    def _weights(self) -> Float32Array:
        spec, u = self.spec, self.units
        assert spec.recurrent_activation is not None
        self.gate_activation, scale = _gate_activation(spec.recurrent_activation)
        z, r = (_stack(spec, *self._gate_columns(k)) for k in (0, 1))
        z *= _F32(scale)
        r *= _F32(scale)
        cols = slice(2 * u, 3 * u)
        zero_x = np.zeros((spec.n_inputs, u), _F32)
        zero_h = np.zeros((u, u), _F32)
        no_bias = np.zeros(u, _F32)
        if spec.bias is None:
            input_bias, recurrent_bias = no_bias, no_bias
        elif spec.reset_after:
            input_bias, recurrent_bias = spec.bias[0, cols], spec.bias[1, cols]
        else:
            input_bias, recurrent_bias = spec.bias[cols], no_bias
        blocks = [z, r, _stack(spec, spec.kernel[:, cols], zero_h, input_bias)]
        if spec.reset_after:
            blocks.append(_stack(spec, zero_x, spec.recurrent_kernel[:, cols], recurrent_bias))
        return np.ascontiguousarray(np.stack(blocks))

    @property
    def matmuls(self) -> tuple[Matmul, ...]:
        return (self.matmul, self.candidate_recurrent)

    def ensure(self, capacity: int) -> None:
        if padded_rows(capacity) > self.capacity:
            self.reset_state = np.zeros((padded_rows(capacity), self.units), _F32)
        super().ensure(capacity)

    def run(self, x: Float32Array, states: Sequence[Float32Array]) -> Float32Array:
        (h,) = states
        gates = self._project(x, h)
        self.gate_activation(gates[:2])
        z, r, candidate = gates[0], gates[1], gates[2]
        if self.spec.reset_after:
            recurrent_part = gates[3]
            np.multiply(r, recurrent_part, out=recurrent_part)
            np.add(candidate, recurrent_part, out=candidate)
        else:
            b, whole = x.shape[0], padded_rows(x.shape[0])
            np.multiply(r, h, out=self.reset_state[:b])
            self.candidate_recurrent(self.reset_state[:whole], self.scratch[:whole])
            np.add(candidate, self.scratch[:b], out=candidate)
        self.activation(candidate)
        # h' = z * h + (1 - z) * candidate = candidate + z * (h - candidate)
        scratch = self.scratch[: x.shape[0]]
        np.subtract(h, candidate, out=scratch)
        np.multiply(scratch, z, out=scratch)
        np.add(candidate, scratch, out=h)
        return h


class SimpleRnnCell(RecurrentCell):
    n_gates = 1

    def _weights(self) -> Float32Array:
        return np.ascontiguousarray(_stack(self.spec, *self._gate_columns(0))[None])

    def run(self, x: Float32Array, states: Sequence[Float32Array]) -> Float32Array:
        (h,) = states
        gates = self._project(x, h)
        self.activation(gates[0])
        np.copyto(h, gates[0])
        return h


def make_cell(spec: RecurrentSpec, native: bool | None = None) -> RecurrentCell:
    """`native`: whether an LSTM uses the compiled cell loop (None: where it is built)."""
    if spec.kind == "lstm":
        return LstmCell(spec, native)
    if spec.kind == "gru":
        return GruCell(spec)
    return SimpleRnnCell(spec)

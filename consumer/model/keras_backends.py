"""Reference backends that run the step through Keras itself, for comparison with `NumpyStep`.

- `KerasBatchedStep`: an explicit-state Keras model (`initial_state=` in, `return_state=True`
  out) advancing the whole batch in one call of one compiled function.
- `KerasStatefulStep`: the usual single-stream approach: the model rebuilt with `stateful=True`
  and batch size 1; for each row, that row's states are written into the layers, one `(1, 1, F)`
  step runs, and the states are read back. About a millisecond per row.

Both reuse the loaded model's per-step layers and copy its recurrent weights into rebuilt
recurrent layers. TensorFlow is imported only when one of them is built.
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

from typing import Any

import numpy as np

from consumer.model.chain import extract_chain
from consumer.model.layer_specs import RECURRENT_CLASSES, class_name
from consumer.model.plan import build_plan
from consumer.model.specs import PlanBacked, StepPlan
from consumer.model.step import Float32Array


def _is_recurrent(layer: Any) -> bool:
    return class_name(layer) in RECURRENT_CLASSES or class_name(layer) == "RNN"


class _KerasStepBase(PlanBacked):
    def __init__(self, model: Any, plan: StepPlan | None) -> None:
        self.plan = plan if plan is not None else build_plan(model, getattr(model, "name", "model"))
        self._links = extract_chain(model).links


class KerasBatchedStep(_KerasStepBase):
    """One compiled explicit-state call per batch; the batch dimension is left free so that
    batches of any size share one trace."""

    def __init__(self, model: Any, plan: StepPlan | None = None) -> None:
        super().__init__(model, plan)
        import keras
        import tensorflow as tf

        features = self.plan.n_features
        x_in = keras.Input(shape=(1, features))
        state_in = [keras.Input(shape=(size,)) for size in self.plan.state_sizes]
        current, used = x_in, 0
        new_states: list[Any] = []
        for link in self._links:
            layer = link.layer
            if not _is_recurrent(layer):
                current = layer(current)
                continue
            count = 2 if class_name(layer.cell) == "LSTMCell" else 1
            overrides = {"return_state": True, "stateful": False}
            clone = type(layer).from_config({**layer.get_config(), **overrides})
            outputs = clone(current, initial_state=state_in[used : used + count])
            clone.set_weights(layer.get_weights())
            current, new_states = outputs[0], [*new_states, *outputs[1:]]
            used += count
        self._model = keras.Model([x_in, *state_in], [current, *new_states])
        signature = [
            tf.TensorSpec([None, 1, features], tf.float32),
            [tf.TensorSpec([None, size], tf.float32) for size in self.plan.state_sizes],
        ]
        self._call = tf.function(self._forward, input_signature=signature)

    def _forward(self, x: Any, states: list[Any]) -> Any:
        return self._model([x, *states], training=False)

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        outputs = self._call(x[:, None, :], list(states))
        for target, value in zip(states, outputs[1:], strict=True):
            np.copyto(target, value.numpy())
        result = np.asarray(outputs[0].numpy(), dtype=np.float32)
        return result.reshape(x.shape[0], self.plan.n_outputs)


class KerasStatefulStep(_KerasStepBase):
    """A stateful batch-1 model driven row by row, states swapped in and out of its layers."""

    def __init__(self, model: Any, plan: StepPlan | None = None) -> None:
        super().__init__(model, plan)
        import keras
        import tensorflow as tf

        x_in = keras.Input(batch_shape=(1, 1, self.plan.n_features))
        current = x_in
        self._recurrent: list[Any] = []
        for link in self._links:
            layer = link.layer
            if not _is_recurrent(layer):
                current = layer(current)
                continue
            clone = type(layer).from_config({**layer.get_config(), "stateful": True})
            current = clone(current)
            clone.set_weights(layer.get_weights())
            self._recurrent.append(clone)
        self._model = keras.Model(x_in, current)
        self._call = tf.function(self._forward)

    def _forward(self, x: Any) -> Any:
        return self._model(x, training=False)

    def _variables(self) -> list[Any]:
        return [variable for layer in self._recurrent for variable in layer.states]

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        rows = x.shape[0]
        out = np.empty((rows, self.plan.n_outputs), np.float32)
        variables = self._variables()
        for row in range(rows):
            for variable, state in zip(variables, states, strict=True):
                variable.assign(state[row : row + 1])
            result = self._call(x[row : row + 1, None, :])
            out[row] = np.asarray(result.numpy(), dtype=np.float32).reshape(-1)
            for variable, state in zip(variables, states, strict=True):
                state[row] = variable.numpy()[0]
        return out

"""Training the reference model: the user's architecture without `Flatten`.

    LSTM(32, return_sequences=True) -> LeakyReLU -> Dropout(0.2)
    -> LSTM(16) -> Dropout(0.2) -> LeakyReLU -> Dense(1, sigmoid)

Trained for every prefix length at once: a twin of the model whose last LSTM returns sequences
(same weights, same shapes) is fit with the sequence's label as the target at every step, so its
output at step t is the deployed model's output on the prefix 1..t. Early predictions are then
meaningful rather than an artefact of a model that only ever saw full windows. The deployed
model (last LSTM returning its last output) receives the trained weights and is saved.
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from consumer.training import synthetic
from consumer.training.scoring_metrics import accuracy, roc_auc


@dataclass(frozen=True)
class TrainSettings:
    output: Path
    epochs: int = 12
    seed: int = 0
    samples: int = 24_000
    validation: int = 4_000
    batch_size: int = 128
    learning_rate: float = 3e-3


@dataclass(frozen=True)
class PrefixScore:
    length: int
    accuracy: float
    auc: float


@dataclass(frozen=True)
class TrainReport:
    output: Path
    seconds: float
    final_loss: float
    scores: tuple[PrefixScore, ...]


def build_model(every_step: bool) -> Any:
    """The architecture; `every_step=True` gives the training twin with an output per step."""
    import keras
    from keras import layers

    # Fixed layer names: the model version hashes the config, so a seed always gives one version.
    return keras.Sequential(
        [
            keras.Input((None, synthetic.N_FEATURES), name="samples"),
            layers.LSTM(32, return_sequences=True, name="lstm_32"),
            layers.LeakyReLU(name="leaky_relu_1"),
            layers.Dropout(0.2, name="dropout_1"),
            layers.LSTM(16, return_sequences=every_step, name="lstm_16"),
            layers.Dropout(0.2, name="dropout_2"),
            layers.LeakyReLU(name="leaky_relu_2"),
            layers.Dense(1, activation="sigmoid", name="head"),
        ],
        name="reference_every_step" if every_step else "reference",
    )


def train(settings: TrainSettings) -> TrainReport:
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    length = synthetic.TRAINED_LENGTH
    x, y = synthetic.generate(np.random.default_rng(settings.seed), settings.samples, length)
    x_val, y_val = synthetic.generate(
        np.random.default_rng(settings.seed + 1_000_003), settings.validation, length
    )

    twin = build_model(every_step=True)
    twin.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="binary_crossentropy",
    )
    history = twin.fit(
        x,
        _every_step(y, length),
        validation_data=(x_val, _every_step(y_val, length)),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        shuffle=True,
        verbose=2,
    )
    model = build_model(every_step=False)
    model.set_weights(twin.get_weights())
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    model.save(settings.output)
    return TrainReport(
        output=settings.output,
        seconds=time.perf_counter() - started,
        final_loss=float(history.history["loss"][-1]),
        scores=evaluate_prefixes(model, x_val, y_val),
    )


def _every_step(y: np.ndarray[Any, np.dtype[np.int64]], length: int) -> np.ndarray[Any, Any]:
    return np.repeat(y.astype(np.float32)[:, None, None], length, axis=1)


def evaluate_prefixes(
    model: Any, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> tuple[PrefixScore, ...]:
    """Accuracy and ROC AUC of the model's output on every prefix 1..T of `x`."""
    scores = []
    for t in range(1, x.shape[1] + 1):
        p = np.asarray(model(x[:, :t], training=False)).reshape(-1)
        scores.append(PrefixScore(t, accuracy(y, p), roc_auc(y, p)))
    return tuple(scores)


def format_report(report: TrainReport) -> str:
    lines = [
        f"saved {report.output} in {report.seconds:.1f} s (final training loss "
        f"{report.final_loss:.4f})",
        "validation by prefix length:",
        "  samples seen  accuracy  ROC AUC",
    ]
    lines += [f"  {s.length:12d}  {s.accuracy:8.4f}  {s.auc:7.4f}" for s in report.scores]
    return "\n".join(lines)

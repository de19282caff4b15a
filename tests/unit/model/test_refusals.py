"""Models that cannot be streamed, or must not be loaded, are refused with named reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest
from keras import layers

from consumer.model import ModelError, ModelRefused, load_plan
from consumer.model.file_plan import read_plan
from consumer.model.plan import build_plan


def refusal(model: Any, folder: Path | None = None) -> ModelRefused:
    """The Keras path's refusal; with `folder`, also checks that the file reader, given the
    model saved as .keras, refuses it naming the same layers with the very same texts (it may
    leave out a consequence the Keras path adds, such as the output shape after an unsupported
    layer, which it does not infer)."""
    with pytest.raises(ModelRefused) as caught:
        build_plan(model, "test")
    if folder is not None:
        path = folder / "refused.keras"
        model.save(path)
        with pytest.raises(ModelRefused) as from_file:
            read_plan(path)
        got, want = from_file.value.reasons, caught.value.reasons
        assert set(got) <= set(want)
        assert [r for r in want if "layer '" in r] == [r for r in got if "layer '" in r]
    return caught.value


def sequential(*stack: Any, shape: tuple[int | None, ...] = (7, 3)) -> Any:
    return keras.Sequential([keras.Input(shape), *stack])


def test_flatten_is_refused_with_what_to_do(tmp_path: Path) -> None:
    reasons = refusal(
        sequential(
            layers.LSTM(4, return_sequences=True), layers.Flatten(name="flat"), layers.Dense(1)
        ),
        tmp_path,
    ).reasons
    assert len(reasons) == 1
    assert "'flat' (class Flatten)" in reasons[0]
    assert "return_sequences=False" in reasons[0]


@pytest.mark.parametrize(
    ("layer", "cls", "hint"),
    [
        (layers.Conv1D(4, 2, name="conv"), "Conv1D", "convolves"),
        (layers.Bidirectional(layers.LSTM(3), name="both"), "Bidirectional", "backwards"),
        (layers.GlobalAveragePooling1D(name="pool"), "GlobalAveragePooling1D", "pools"),
        (layers.MaxPooling1D(name="pool"), "MaxPooling1D", "pools"),
        (layers.Masking(name="mask"), "Masking", "masked"),
        (layers.LSTM(3, go_backwards=True, name="back"), "LSTM", "go_backwards"),
        (layers.Dense(2, activation="hard_tanh", name="odd"), "Dense", "hard_tanh"),
        (layers.Permute((2, 1), name="perm"), "Permute", "time axis"),
        (layers.Embedding(5, 2, name="embed"), "Embedding", "only LSTM, GRU"),
    ],
)
def test_time_mixing_and_unsupported_layers_are_named(
    layer: Any, cls: str, hint: str, tmp_path: Path
) -> None:
    reasons = refusal(sequential(layer), tmp_path).reasons
    assert any(f"(class {cls})" in r and hint in r for r in reasons), reasons


def test_all_reasons_are_reported_together(tmp_path: Path) -> None:
    model = sequential(
        layers.Conv1D(4, 2, name="conv"),
        layers.Bidirectional(layers.LSTM(3, return_sequences=True), name="both"),
        layers.Flatten(name="flat"),
        layers.Dense(1),
    )
    error = refusal(model, tmp_path)
    assert len(error.reasons) == 3
    for name in ("'conv' (class Conv1D)", "'both' (class Bidirectional)", "'flat' (class Flatten)"):
        assert sum(name in reason for reason in error.reasons) == 1
    assert "model refused" in str(error)


def test_branching_and_multiple_inputs_are_refused() -> None:
    a = keras.Input((None, 3))
    b = keras.Input((None, 3))
    two_inputs = keras.Model([a, b], layers.LSTM(2)(layers.Add()([a, b])))
    assert any("2 inputs" in reason for reason in refusal(two_inputs).reasons)
    x = keras.Input((None, 3))
    h = layers.GRU(4, return_sequences=True)(x)
    merged = layers.Add(name="merge")([layers.Dense(2)(h), layers.Dense(2)(h)])
    reasons = refusal(keras.Model(x, merged)).reasons
    assert any("'merge' (class Add)" in r and "linear chain" in r for r in reasons), reasons


def test_input_must_be_batch_time_features() -> None:
    flat_input = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
    assert any("(batch, time or None, features)" in r for r in refusal(flat_input).reasons)


def test_stacked_cells_are_refused(tmp_path: Path) -> None:
    stacked = layers.RNN(layers.StackedRNNCells([layers.LSTMCell(2), layers.GRUCell(2)]), name="st")
    reasons = refusal(sequential(stacked), tmp_path).reasons
    assert any("'st' (class RNN)" in r and "StackedRNNCells" in r for r in reasons), reasons


def lambda_model(marker: Path) -> Any:
    """A Lambda that writes `marker` whenever Keras runs it: at construction, and again if a
    load executes it. Built from source so the path is a constant in its code: Keras can
    serialize and rebuild a lambda without closure or defaults."""
    touch = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('x'), t)[1]")
    inputs = keras.Input((None, 3))
    x = layers.Lambda(touch, name="sneaky")(inputs)
    return keras.Model(inputs, layers.LSTM(2)(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_is_refused_without_running_it(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / f"lambda{suffix}"
    lambda_model(marker).save(path)
    marker.unlink()  # built and saved: the function ran at construction

    with pytest.raises(ModelRefused) as caught:
        load_plan(path)
    (reason,) = caught.value.reasons
    assert "'sneaky' (class Lambda)" in reason and path.name in reason
    assert not marker.exists()


def test_unsafe_load_of_the_same_file_would_have_run_it(tmp_path: Path) -> None:
    """Shows the file above is dangerous: Keras outside safe mode executes the function."""
    marker = tmp_path / "marker.txt"
    path = tmp_path / "lambda.keras"
    lambda_model(marker).save(path)
    marker.unlink()
    keras.saving.load_model(path, compile=False, safe_mode=False)
    assert marker.exists()


@keras.saving.register_keras_serializable(package="zoo")
class Doubling(layers.Layer):  # type: ignore[misc]  # keras is untyped
    def call(self, x: Any) -> Any:
        return x * 2.0


def test_custom_layers_are_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "custom.keras"
    sequential(Doubling(name="twice"), layers.LSTM(2)).save(path)
    with pytest.raises(ModelRefused) as caught:
        load_plan(path)
    (reason,) = caught.value.reasons
    assert "'twice' (class Doubling)" in reason and "custom" in reason and "custom.keras" in reason


def custom_loss(y_true: Any, y_pred: Any) -> Any:
    return keras.ops.mean(keras.ops.square(y_true - y_pred))


def test_a_custom_loss_in_the_compile_config_is_not_a_reason_to_refuse(tmp_path: Path) -> None:
    path = tmp_path / "compiled.keras"
    model = sequential(layers.LSTM(2), layers.Dense(1))
    model.compile(optimizer="adam", loss=custom_loss)
    model.save(path)
    assert load_plan(path).state_sizes == (2, 2)


def test_missing_and_unreadable_files_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_plan(tmp_path / "absent.keras")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="cannot read"):
        load_plan(garbage)
    wrong = tmp_path / "model.onnx"
    wrong.write_bytes(b"")
    with pytest.raises(ModelError, match="expected a Keras model file"):
        load_plan(wrong)
    weights_only = tmp_path / "weights.weights.h5"
    keras.Sequential([keras.Input((None, 3)), layers.LSTM(2)]).save_weights(weights_only)
    with pytest.raises(ModelError, match="no model config"):
        load_plan(weights_only)

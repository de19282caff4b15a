"""Stateful, per-sample scoring of keyed sample streams with a recurrent Keras model."""

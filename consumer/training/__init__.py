"""Training a model on synthetic sequences (`consumer train`), and the scores the evaluation
shares with it. Not part of the serving worker: needs the `[keras]` extra."""

"""Settings shared by every test. Kept light: importing Keras is left to the tests that need it."""

from __future__ import annotations

import os

from hypothesis import settings

# Set before any test imports Keras, so each test module need not.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Model-backed properties run at the speed of the machine; a per-example deadline would make them
# fail on a busy CI runner for reasons unrelated to correctness.
settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

"""Imported first by the training tests: few threads (the CI machine has 2 cores), and Keras with
its default TensorFlow backend required — skipped locally, a failure when CI is set."""

import os

import pytest

for _var, _val in (("TF_NUM_INTRAOP_THREADS", "2"), ("TF_NUM_INTEROP_THREADS", "1"), ("OMP_NUM_THREADS", "2"),
                   ("TF_CPP_MIN_LOG_LEVEL", "3")):
    os.environ.setdefault(_var, _val)

try:
    import keras  # noqa: F401
    if keras.backend.backend() == "tensorflow":
        import tensorflow  # noqa: F401
except ImportError as exc:
    if os.environ.get("CI"):
        raise RuntimeError(f"{exc.name} is not installed; CI must run the training tests "
                           "(pip install -e '.[train]')") from None
    pytest.skip(f"{exc.name} is not installed (pip install -e '.[train]')", allow_module_level=True)

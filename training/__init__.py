"""fid's training layer: Keras 3 classifiers trained on catalog exports (behind the `train` extra).

Importing this package is cheap: Keras is imported by the submodules that need it, never here.
"""

INSTALL_HINT = "pip install -e '.[train]'  (or: pip install keras tensorflow-cpu scikit-learn matplotlib)"

"""The self-contained model folder, and prediction from it without the catalog.

A model folder holds ``model.keras`` (best on validation loss), ``labels.json`` (class index ->
clade and superclade, image and input size, preprocessing, architecture, export name, taxonomy
version, fid and Keras versions, training configuration, per-clade training counts, training run
id), ``history.csv`` and ``curves.png``. Images are fed to the model as uint8 RGB squashed to
``input_size`` x ``input_size`` after the reviewed crop; the model rescales them itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TrainingError

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"


def read_labels(model_dir: str | Path) -> dict:
    path = Path(model_dir) / LABELS_FILE
    if not path.exists():
        raise TrainingError(f"{model_dir} is not a model folder (no {LABELS_FILE}); "
                            "pass the --out folder of `fid train`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_labels(model_dir: str | Path, meta: dict) -> None:
    path = Path(model_dir) / LABELS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


@dataclass
class Bundle:
    model_dir: Path
    model: object
    meta: dict

    @property
    def classes(self) -> list[str]:
        return [c["clade"] for c in self.meta["classes"]]

    @property
    def superclades(self) -> list[str]:
        return [c.get("superclade", "") for c in self.meta["classes"]]

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


def load_bundle(model_dir: str | Path) -> Bundle:
    model_dir = Path(model_dir)
    meta = read_labels(model_dir)
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise TrainingError(f"{model_dir} has no {MODEL_FILE} yet (training has not finished an epoch)")
    import keras

    from . import models  # noqa: F401  registers fid's own layers (training.models.RandomCrop, ...)

    model = keras.saving.load_model(path, compile=False)
    return Bundle(model_dir, model, meta)


def sequence_for(bundle: Bundle, paths, crops=None, batch_size: int = 32, workers: int = 1):
    from .data import ImageSequence

    return ImageSequence(paths, None, crops, size=bundle.input_size, batch_size=batch_size,
                         workers=workers)


def predict_probs(bundle: Bundle, paths, crops=None, batch_size: int = 32, workers: int = 1) -> np.ndarray:
    if not len(paths):
        return np.zeros((0, len(bundle.classes)), dtype=np.float32)
    seq = sequence_for(bundle, paths, crops, batch_size, workers)
    return np.asarray(bundle.model.predict(seq, verbose=0), dtype=np.float64)


def pooled_features(bundle: Bundle, paths, crops=None, batch_size: int = 32, workers: int = 1) -> np.ndarray:
    from .models import feature_model

    seq = sequence_for(bundle, paths, crops, batch_size, workers)
    return np.asarray(feature_model(bundle.model).predict(seq, verbose=0), dtype=np.float64)


def predict_paths(model_dir: str | Path, paths, top: int = 3, batch_size: int = 32) -> list[dict]:
    """Top-``top`` clades for each image file: ``[{"image", "top": [{"clade", "superclade", "p"}]}]``."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise TrainingError(f"image file not found: {missing[0]}")
    bundle = load_bundle(model_dir)
    probs = predict_probs(bundle, list(paths), batch_size=batch_size)
    out = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p)[:top]
        out.append({"image": str(path), "top": [
            {"clade": bundle.classes[i], "superclade": bundle.superclades[i], "p": float(p[i])} for i in order]})
    return out

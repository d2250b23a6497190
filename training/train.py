"""`fid train`: the paper's protocol on Keras 3 (any backend), from a catalog export.

Defaults follow the authors' published TF script: Inception-ResNet-v2 with ImageNet weights, the
layers from ``mixed_6a`` on trainable (``--freeze half``), Adam at 2e-4 (``--optimizer sgd``:
momentum 0.9, 1e-4 as in their Keras script), learning rate x0.96 every half epoch (staircase),
random-crop augmentation, 60 epochs.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .bundle import BACKUP_DIR, HISTORY_FILE, LABELS_FILE, MODEL_FILE, read_labels, write_labels
from .errors import TrainingError


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclass
class TrainConfig:
    arch: str = "inception_resnet_v2"
    weights: str = "imagenet"          # imagenet | none | PATH
    freeze: str = "auto"               # auto | half | none | N (auto: half when pretrained)
    optimizer: str = "adam"            # adam | sgd
    epochs: int = 60
    batch_size: int = 64
    lr: float | None = None            # None: 2e-4 (adam) / 1e-4 (sgd)
    decay_every: float = 0.5           # epochs
    decay_rate: float = 0.96
    augment: list[str] = field(default_factory=lambda: ["crop"])
    image_size: int | None = None      # None: the architecture's default (299 for the Inception family)
    seed: int = 42
    dropout: float = 0.2
    workers: int | None = None         # None: training.data.default_workers (1.5 x cores for threads)
    multiprocessing: bool = False
    precision: str = "float32"         # float32 | mixed_bfloat16 | mixed_float16 (GPU speed)

    def validate(self) -> None:
        from .models import OPTIMIZERS, check_arch, parse_augment

        check_arch(self.arch)
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimizer {self.optimizer!r}; choose from: {', '.join(OPTIMIZERS)}")
        self.augment = list(parse_augment(",".join(self.augment)))
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(f"--epochs and --batch-size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.workers is not None and self.workers < 1:
            raise TrainingError(f"--workers must be >= 1 (got {self.workers})")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise TrainingError(f"--weights {self.weights!r}: no such file; choose imagenet, none or a weights file")


def _fid_version() -> str:
    from dataset_db import __version__

    return __version__


def read_history(out_dir: Path) -> list[dict]:
    """history.csv rows, one per epoch (the last row wins when a resumed run repeated one)."""
    path = Path(out_dir) / HISTORY_FILE
    if not path.exists():
        return []
    rows: dict[int, dict] = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            rows[int(r["epoch"])] = {k: (float(v) if k != "epoch" and v not in ("", None) else v)
                                     for k, v in r.items()}
    return [rows[k] | {"epoch": k} for k in sorted(rows)]


def _best_val_loss(history: list[dict]) -> float | None:
    vals = [r["val_loss"] for r in history if isinstance(r.get("val_loss"), float)]
    return min(vals) if vals else None


def train(cat, store: str | Path, export: str | None, out_dir: str | Path, cfg: TrainConfig | None = None,
          resume: bool = False, callbacks=(), verbose="auto") -> dict:
    """Train on ``export``'s train split, validating on its val split; returns a summary.

    With ``resume`` the run in ``out_dir`` continues from its last completed epoch, with its saved
    configuration, weights, optimizer state and learning-rate step (BackupAndRestore).
    """
    out_dir = Path(out_dir)
    backup = out_dir / BACKUP_DIR
    if resume:
        if not (out_dir / LABELS_FILE).exists():
            raise TrainingError(f"nothing to resume in {out_dir}: no {LABELS_FILE}; start a run with --out {out_dir}")
        meta = read_labels(out_dir)
        epochs = cfg.epochs if cfg is not None and cfg.epochs != meta["config"]["epochs"] else None
        cfg = TrainConfig(**meta["config"])
        if epochs:
            cfg.epochs = epochs
        export = meta["export"]
    else:
        if (out_dir / LABELS_FILE).exists() or backup.exists():
            raise TrainingError(f"{out_dir} already holds a training run; pass --resume to continue it "
                                "or choose another --out")
        if not export:
            raise TrainingError("no export given; pass --export NAME (see `fid export`)")
        cfg = cfg or TrainConfig()
        meta = None
    cfg.validate()

    import keras

    from dataset_db.repo_training import (clade_superclades, finish_training_run, set_training_status,
                                          start_training_run)

    from .data import ImageSequence, default_workers
    from .items import read_export, to_itemset
    from .models import build_model, make_optimizer, parse_augment, resolve_freeze
    from .plots import plot_curves

    exp, items = read_export(cat, export, ("train", "val"))
    train_items = [it for it in items if it["split"] == "train"]
    val_items = [it for it in items if it["split"] == "val"]
    with cat.session() as s:
        order = list(clade_superclades(s))
    present = {it["clade"] for it in train_items}
    if meta is not None:
        classes = [c["clade"] for c in meta["classes"]]
    else:
        classes = [c for c in order if c in present] + sorted(present - set(order))
    if len(classes) < 2:
        raise TrainingError(f"export {export!r} has {len(classes)} clade(s) in its train split; need at least 2")
    index = {c: i for i, c in enumerate(classes)}
    train_set = to_itemset(train_items, store, index)
    val_set = to_itemset(val_items, store, index)

    keras.utils.set_random_seed(cfg.seed)
    augment = parse_augment(",".join(cfg.augment))
    weights = None if cfg.weights == "none" else cfg.weights
    cfg.freeze = resolve_freeze(cfg.freeze, cfg.arch, weights)
    # layers take the dtype policy current when they are built (the softmax head stays float32)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(cfg.precision)
    try:
        model, info = build_model(cfg.arch, len(classes), cfg.image_size, weights, cfg.freeze, augment,
                                  cfg.dropout, cfg.seed)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    seq = dict(size=info["input_size"], batch_size=cfg.batch_size,
               workers=cfg.workers or default_workers(cfg.multiprocessing),
               use_multiprocessing=cfg.multiprocessing)
    train_seq = ImageSequence(train_set.paths, train_set.labels, train_set.crops, shuffle=True,
                              seed=cfg.seed, **seq)
    val_seq = (ImageSequence(val_set.paths, val_set.labels, val_set.crops, **seq)
               if val_set.paths else None)
    model.compile(optimizer=make_optimizer(cfg.optimizer, cfg.lr, len(train_seq), cfg.decay_every,
                                           cfg.decay_rate),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")])

    out_dir.mkdir(parents=True, exist_ok=True)
    sup = {it["clade"]: it["superclade"] for it in items}
    if meta is None:
        with cat.session() as s:
            run_id = start_training_run(s, export, asdict(cfg), str(out_dir.resolve()))
        counts: dict[str, int] = {}
        for it in train_set.items:
            counts[it["clade"]] = counts.get(it["clade"], 0) + 1
        meta = {"classes": [{"index": i, "clade": c, "superclade": sup.get(c, "")} for i, c in enumerate(classes)],
                **info, "export": export, "taxonomy_version": exp["taxonomy_version"],
                "fid_version": _fid_version(), "keras_version": keras.__version__,
                "backend": keras.backend.backend(), "training_run_id": run_id, "config": asdict(cfg),
                "train_counts": counts, "val_count": len(val_set.paths),
                "preprocessing_note": "uint8 RGB, reviewed crop applied, squashed to input_size x input_size; "
                                      "the model rescales (" + info["preprocessing"] + ") itself"}
        write_labels(out_dir, meta)
    else:
        run_id = meta["training_run_id"]
        with cat.session() as s:
            set_training_status(s, run_id, "running")

    monitor = "val_loss" if val_seq is not None else "loss"
    history = read_history(out_dir)
    cbs = [
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=True),
        keras.callbacks.ModelCheckpoint(str(out_dir / MODEL_FILE), monitor=monitor, save_best_only=True,
                                        initial_value_threshold=_best_val_loss(history) if resume else None),
        keras.callbacks.CSVLogger(str(out_dir / HISTORY_FILE), append=resume),
        *callbacks,
    ]
    try:
        model.fit(train_seq, validation_data=val_seq, epochs=cfg.epochs, callbacks=cbs, verbose=verbose)
    except BaseException:
        with cat.session() as s:
            set_training_status(s, run_id, "interrupted")
        raise
    history = read_history(out_dir)
    plot_curves(history, out_dir / "curves.png", title=f"{cfg.arch} on {export}")
    best = min(history, key=lambda r: r.get(monitor, float("inf"))) if history else {}
    metrics = {"epochs": len(history), "best_epoch": best.get("epoch"),
               **{k: v for k, v in best.items() if k != "epoch"}}
    with cat.session() as s:
        finish_training_run(s, run_id, metrics, "done")
    return {"training_run_id": run_id, "out": str(out_dir), "classes": len(classes),
            "train_images": len(train_set.paths), "val_images": len(val_set.paths),
            "skipped_val": val_set.skipped, **info, "metrics": metrics,
            "backend": keras.backend.backend(), "cpu_count": os.cpu_count()}

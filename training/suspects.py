"""`fid suspects`: images whose label the model disputes, for the review page's suspects queue.

Out-of-sample probabilities: the model's pooled features of every export image, then a logistic
regression cross-validated over folds (each image is scored by a classifier that never saw it;
in-sample predictions do not count). With cleanlab installed its ``find_label_issues`` picks the
suspects (ranked by self-confidence); without it, images whose out-of-sample top class differs
from their label, ranked by how little probability their label gets. ``score`` = 1 - p(label).
"""

from __future__ import annotations

import numpy as np

from .errors import TrainingError


def out_of_sample_probs(features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5,
                        seed: int = 0) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels, minlength=n_classes)
    k = int(min(folds, counts[counts > 0].min()))
    if k < 2:
        raise TrainingError("every clade needs at least 2 images for cross-validated suspects")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    probs = cross_val_predict(clf, features, labels, cv=cv, method="predict_proba")
    full = np.zeros((len(labels), n_classes))
    full[:, np.unique(labels)] = probs
    return full


def rank_suspects(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, str]:
    """Indices of suspect items, most suspicious first, and the method used."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        p_given = probs[np.arange(len(labels)), labels]
        idx = np.flatnonzero(probs.argmax(axis=1) != labels)
        return idx[np.argsort(p_given[idx], kind="stable")], "self-confidence (cleanlab not installed)"
    present = np.unique(labels)
    remap = {c: i for i, c in enumerate(present)}
    idx = find_label_issues(np.array([remap[c] for c in labels]), probs[:, present],
                            return_indices_ranked_by="self_confidence")
    return np.asarray(idx, dtype=int), "cleanlab find_label_issues"


def find_suspects(cat, store, model_dir, export: str | None = None, splits=("train", "val", "test"),
                  folds: int = 5, limit: int | None = None, seed: int = 0, write: bool = True) -> dict:
    from .bundle import load_bundle, pooled_features
    from .items import read_export, to_itemset

    bundle = load_bundle(model_dir)
    export = export or bundle.meta["export"]
    _exp, items = read_export(cat, export, splits, distinct_images=True)
    seen, unique = set(), []
    for it in items:  # one row per image even when it sits in two splits
        if it["image_id"] not in seen:
            seen.add(it["image_id"])
            unique.append(it)
    iset = to_itemset(unique, store, bundle.index())
    labels = np.asarray(iset.labels, dtype=int)
    feats = pooled_features(bundle, iset.paths, iset.crops)
    probs = out_of_sample_probs(feats, labels, len(bundle.classes), folds, seed)
    idx, method = rank_suspects(labels, probs)
    if limit:
        idx = idx[:limit]
    rows = [{"image_id": iset.items[i]["image_id"], "given_clade": bundle.classes[labels[i]],
             "predicted_clade": bundle.classes[int(probs[i].argmax())],
             "score": float(1 - probs[i, labels[i]])} for i in idx]
    run_id = bundle.meta.get("training_run_id")
    written = 0
    if write:
        from dataset_db.repo_training import UnknownTrainingRunError, get_training_run, replace_suspects

        with cat.session() as s:
            try:
                get_training_run(s, run_id) if run_id is not None else None
            except UnknownTrainingRunError:
                run_id = None  # a model folder from another catalog
            written = replace_suspects(s, run_id, rows)
    return {"n_images": len(labels), "method": method, "suspects": rows, "written": written,
            "training_run_id": run_id, "oos_accuracy": float((probs.argmax(1) == labels).mean())}

"""`fid evaluate`: the paper's tables and figures from a model folder and an export split.

All metrics come from scikit-learn. Writes into ``out`` (default ``MODEL_DIR/eval-<split>``):
``metrics.json``, ``per_clade.csv``/``.md`` (Table 3: P, R, F1, support, three most frequent wrong
labels with rates), ``per_superclade.csv``, ``confusion_matrix.csv``/``.png``, ``roc.json``/``.png``,
``predictions.csv``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .errors import TrainingError


def compute_metrics(y_true, probs, classes: list[str], superclades: list[str] | None = None) -> dict:
    """Top-1/top-3, per-clade and per-superclade metrics, confusion matrix and ROC from fixed
    predictions. ``probs`` is (n, n_classes); ``y_true`` class indices."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, precision_recall_fscore_support,
                                 roc_auc_score, roc_curve, top_k_accuracy_score)
    from sklearn.preprocessing import label_binarize

    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    k = len(classes)
    labels = np.arange(k)
    if len(y_true) == 0:
        raise TrainingError("nothing to evaluate: the split has no images of the model's clades")
    y_pred = probs.argmax(axis=1)
    superclades = superclades or [""] * k
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    p, r, f, sup = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_clade = {}
    for i, c in enumerate(classes):
        row = cm[i].copy()
        row[i] = 0
        wrong = [j for j in np.argsort(-row, kind="stable") if row[j] > 0][:3]
        per_clade[c] = {"superclade": superclades[i], "precision": float(p[i]), "recall": float(r[i]),
                        "f1": float(f[i]), "support": int(sup[i]),
                        "confused_with": [{"clade": classes[j], "count": int(row[j]),
                                           "rate": float(row[j] / sup[i])} for j in wrong]}
    per_super = {}
    sup_arr = np.asarray(superclades)
    for s in dict.fromkeys(superclades):
        m = sup_arr[y_true] == s
        if m.any():
            per_super[s] = {"n": int(m.sum()),
                            "accuracy": float(accuracy_score(y_true[m], y_pred[m])),
                            "superclade_accuracy": float(accuracy_score(sup_arr[y_true[m]], sup_arr[y_pred[m]]))}
    # ROC: one-vs-rest per class present in y_true; micro over all (sample, class) pairs
    Y = label_binarize(y_true, classes=labels) if k > 2 else np.eye(k, dtype=int)[y_true]
    curves, aucs = {}, {}
    present = [i for i in range(k) if 0 < Y[:, i].sum() < len(y_true)]
    for i in present:
        fpr, tpr, _ = roc_curve(Y[:, i], probs[:, i])
        aucs[classes[i]] = float(roc_auc_score(Y[:, i], probs[:, i]))
        curves[classes[i]] = (fpr, tpr, aucs[classes[i]])
    roc = {"per_clade_auc": aucs}
    if present:
        fpr, tpr, _ = roc_curve(Y.ravel(), probs.ravel())
        roc["micro_auc"] = float(roc_auc_score(Y.ravel(), probs.ravel()))
        curves["micro"] = (fpr, tpr, roc["micro_auc"])
        roc["macro_auc"] = float(roc_auc_score(Y[:, present], probs[:, present], average="macro"))
        grid = np.linspace(0, 1, 201)
        mean_tpr = np.mean([np.interp(grid, curves[classes[i]][0], curves[classes[i]][1]) for i in present], axis=0)
        curves["macro"] = (grid, mean_tpr, roc["macro_auc"])
    # with three classes or fewer the true class is always among the top three
    top3 = float(top_k_accuracy_score(y_true, probs, k=3, labels=labels)) if k > 3 else 1.0
    return {"top1": float(accuracy_score(y_true, y_pred)), "top3": top3, "n": int(len(y_true)),
            "per_clade": per_clade, "per_superclade": per_super, "roc": roc,
            "_confusion": cm, "_curves": curves}


def write_reports(metrics: dict, classes: list[str], out: str | Path, title: str = "") -> dict:
    """Write the tables and figures; returns ``{name: path}``."""
    from .plots import plot_confusion, plot_roc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cm = metrics["_confusion"]
    public = {k: v for k, v in metrics.items() if not k.startswith("_")}
    files = {"metrics": out / "metrics.json", "per_clade_csv": out / "per_clade.csv",
             "per_clade_md": out / "per_clade.md", "per_superclade": out / "per_superclade.csv",
             "confusion_csv": out / "confusion_matrix.csv", "confusion_png": out / "confusion_matrix.png",
             "roc_json": out / "roc.json", "roc_png": out / "roc.png"}
    files["metrics"].write_text(json.dumps(public, indent=2), encoding="utf-8")

    def wrong(v, i):
        w = v["confused_with"]
        return (w[i]["clade"], f"{w[i]['rate']:.3f}") if i < len(w) else ("", "")

    head = ["clade", "superclade", "precision", "recall", "f1", "support",
            "wrong_1", "rate_1", "wrong_2", "rate_2", "wrong_3", "rate_3"]
    rows = []
    for c, v in metrics["per_clade"].items():
        rows.append([c, v["superclade"], f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
                     str(v["support"]), *wrong(v, 0), *wrong(v, 1), *wrong(v, 2)])
    with files["per_clade_csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)
    md = [f"# {title}".rstrip(), "",
          f"top-1 {metrics['top1']:.3f}, top-3 {metrics['top3']:.3f}, n = {metrics['n']}", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    files["per_clade_md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    with files["per_superclade"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["superclade", "n", "accuracy", "superclade_accuracy"])
        for s, v in metrics["per_superclade"].items():
            w.writerow([s, v["n"], f"{v['accuracy']:.4f}", f"{v['superclade_accuracy']:.4f}"])
    with files["confusion_csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true \\ predicted", *classes])
        for c, row in zip(classes, cm):
            w.writerow([c, *map(int, row)])
    plot_confusion(cm, classes, files["confusion_png"], title)
    files["roc_json"].write_text(json.dumps(metrics["roc"], indent=2), encoding="utf-8")
    plot_roc(metrics["_curves"], files["roc_png"], title)
    return {k: str(v) for k, v in files.items()}


def evaluate(cat, store: str | Path, model_dir: str | Path, split: str = "test", export: str | None = None,
             out: str | Path | None = None, batch_size: int = 32, workers: int = 1) -> dict:
    """Evaluate the model in ``model_dir`` on ``split`` of ``export`` (default: its training export).

    Items whose clade the model does not know are left out and counted in ``skipped``. When the
    export is the model's own, the results are also added to its training run in the catalog.
    """
    from .bundle import load_bundle, predict_probs
    from .items import parse_splits, read_export, to_itemset

    splits = parse_splits(split)
    bundle = load_bundle(model_dir)
    export = export or bundle.meta["export"]
    _exp, items = read_export(cat, export, splits, distinct_images=True)
    iset = to_itemset(items, store, bundle.index())
    if not iset.paths:
        raise TrainingError(f"split {split!r} of export {export!r} has no images of the model's "
                            f"{len(bundle.classes)} clades")
    probs = predict_probs(bundle, iset.paths, iset.crops, batch_size, workers)
    metrics = compute_metrics(iset.labels, probs, bundle.classes, bundle.superclades)
    out = Path(out) if out else Path(model_dir) / f"eval-{split}" if export == bundle.meta["export"] \
        else Path(model_dir) / f"eval-{export}-{split}"
    metrics["export"], metrics["split"], metrics["skipped"] = export, split, iset.skipped
    files = write_reports(metrics, bundle.classes, out, f"{bundle.meta['arch']} on {export} ({split})")
    with (out / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "given", "predicted", "p_predicted", "p_given"])
        for it, y, p in zip(iset.items, iset.labels, probs):
            j = int(p.argmax())
            w.writerow([it["image_id"], bundle.classes[y], bundle.classes[j], f"{p[j]:.4f}", f"{p[y]:.4f}"])
    run_id = bundle.meta.get("training_run_id")
    if run_id is not None and export == bundle.meta["export"]:
        from dataset_db.repo_training import UnknownTrainingRunError, merge_training_metrics

        try:
            with cat.session() as s:
                merge_training_metrics(s, run_id, {f"eval_{split}": {
                    "top1": metrics["top1"], "top3": metrics["top3"], "n": metrics["n"],
                    "micro_auc": metrics["roc"].get("micro_auc"), "macro_auc": metrics["roc"].get("macro_auc")}})
        except UnknownTrainingRunError:
            pass  # a model folder brought from another catalog
    return {"out": str(out), "files": files, **{k: v for k, v in metrics.items() if not k.startswith("_")}}

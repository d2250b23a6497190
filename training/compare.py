"""`fid compare RUN_A RUN_B`: per-clade recall differences against training-set size (Figure 5).

A run is a model folder or a training-run id from the catalog (its artefact path). Each needs an
evaluation (``fid evaluate``): ``eval-test`` is preferred, else the first ``eval-*`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import TrainingError


def resolve_run(cat_factory, run: str) -> Path:
    path = Path(run)
    if path.is_dir():
        return path
    if run.isdigit():
        from dataset_db.repo_training import get_training_run

        cat = cat_factory()
        with cat.session() as s:
            return Path(get_training_run(s, int(run))["artefact_path"])
    raise TrainingError(f"run {run!r} is neither a model folder nor a training-run id")


def _eval_metrics(model_dir: Path, split: str | None = None) -> tuple[dict, str]:
    cands = [model_dir / f"eval-{split}"] if split else [model_dir / "eval-test"]
    cands += sorted(model_dir.glob("eval-*"))
    for d in cands:
        if (d / "metrics.json").exists():
            return json.loads((d / "metrics.json").read_text()), d.name
    raise TrainingError(f"{model_dir} has no evaluation yet; run `fid evaluate --model {model_dir}` first")


def compare(dir_a: str | Path, dir_b: str | Path, out: str | Path | None = None, split: str | None = None) -> dict:
    from .bundle import read_labels
    from .plots import plot_compare

    dir_a, dir_b = Path(dir_a), Path(dir_b)
    (ma, ea), (mb, eb) = _eval_metrics(dir_a, split), _eval_metrics(dir_b, split)
    ca = read_labels(dir_a).get("train_counts", {})
    cb = read_labels(dir_b).get("train_counts", {})
    rows = []
    for clade, va in ma["per_clade"].items():
        vb = mb["per_clade"].get(clade)
        if vb is None:
            continue
        rows.append({"clade": clade, "train_a": int(ca.get(clade, 0)), "train_b": int(cb.get(clade, 0)),
                     "recall_a": va["recall"], "recall_b": vb["recall"],
                     "recall_diff": vb["recall"] - va["recall"]})
    if not rows:
        raise TrainingError(f"{dir_a} and {dir_b} share no evaluated clades")
    rows.sort(key=lambda r: r["recall_diff"])
    out = Path(out) if out else dir_b / f"compare-{dir_a.name}.png"
    plot_compare(rows, out, dir_a.name, dir_b.name)
    return {"a": str(dir_a), "b": str(dir_b), "eval_a": ea, "eval_b": eb, "top1_a": ma["top1"],
            "top1_b": mb["top1"], "rows": rows, "out": str(out)}

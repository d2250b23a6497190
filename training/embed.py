"""`fid embed`: t-SNE (scikit-learn) and, when umap-learn is installed, UMAP of pooled features."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TrainingError


def sample_per_class(items: list[dict], per_class: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    by: dict[str, list[dict]] = {}
    for it in items:
        by.setdefault(it["clade"], []).append(it)
    out = []
    for clade in sorted(by):
        group = by[clade]
        idx = rng.permutation(len(group))[:per_class]
        out += [group[i] for i in sorted(idx)]
    return out


def project(features: np.ndarray, seed: int = 0) -> tuple[dict, str]:
    """2-D projections ``{method: (n, 2)}`` and a note on what was left out."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 5:
        raise TrainingError(f"need at least 5 images to embed, got {n}")
    x = features
    if x.shape[1] > 50 and n > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    coords = {"t-SNE": TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)}
    note = ""
    try:
        import umap  # umap-learn
    except ImportError:
        note = "UMAP not drawn: pip install umap-learn"
    else:
        coords["UMAP"] = umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed).fit_transform(x)
    return coords, note


def embed(cat, store, model_dir, split: str = "test", per_class: int = 40, out: str | Path = "embed.png",
          export: str | None = None, seed: int = 0) -> dict:
    from .bundle import load_bundle, pooled_features
    from .items import parse_splits, read_export, to_itemset
    from .plots import plot_embedding

    bundle = load_bundle(model_dir)
    export = export or bundle.meta["export"]
    _exp, items = read_export(cat, export, parse_splits(split), distinct_images=True)
    iset = to_itemset(sample_per_class(items, per_class, seed), store, bundle.index())
    feats = pooled_features(bundle, iset.paths, iset.crops)
    coords, note = project(feats, seed)
    labels = [bundle.classes[i] for i in iset.labels]
    title = f"pooled features of {bundle.meta['arch']}: {export} {split}, n = {len(labels)}"
    plot_embedding(coords, labels, Path(out), title + (f" ({note})" if note else ""))
    return {"out": str(out), "n": len(labels), "methods": list(coords), "note": note}

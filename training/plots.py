"""Figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], out: Path, title: str = "") -> Path:
    """Loss and accuracy (train and validation) per epoch."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] + 1 for r in history]
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = [r.get(prefix + key) for r in history]
            if any(isinstance(y, float) for y in ys):
                ax.plot(epochs, ys, style, marker="o", label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_confusion(cm: np.ndarray, classes: list[str], out: Path, title: str = "") -> Path:
    plt = _plt()
    n = len(classes)
    side = max(5.0, 0.3 * n + 3)
    fig, ax = plt.subplots(figsize=(side, side))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), classes, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                            color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, label="row fraction (recall)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_roc(curves: dict, out: Path, title: str = "") -> Path:
    """``curves``: name -> (fpr, tpr, auc); micro and macro drawn bold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, (fpr, tpr, auc) in curves.items():
        bold = name in ("micro", "macro")
        ax.plot(fpr, tpr, lw=2.5 if bold else 0.8, alpha=1 if bold else 0.4,
                label=f"{name} (AUC {auc:.3f})" if bold else None)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_compare(rows: list[dict], out: Path, label_a: str, label_b: str) -> Path:
    """Per-clade recall difference (B - A) against training-set size (the paper's Figure 5)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = [r["train_a"] for r in rows]
    ys = [r["recall_diff"] for r in rows]
    ax.scatter(xs, ys)
    for r in rows:
        ax.annotate(r["clade"], (r["train_a"], r["recall_diff"]), fontsize=7, alpha=0.8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(f"training images per clade ({label_a})")
    ax.set_ylabel(f"recall {label_b} - recall {label_a}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_embedding(coords: dict, labels: list[str], out: Path, title: str = "") -> Path:
    """``coords``: method name -> (n, 2) array; one panel per method, points coloured by clade."""
    plt = _plt()
    k = max(1, len(coords))
    fig, axes = plt.subplots(1, k, figsize=(7 * k, 6), squeeze=False)
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    lab = np.asarray(labels)
    for ax, (method, xy) in zip(axes[0], coords.items()):
        for i, name in enumerate(names):
            m = lab == name
            ax.scatter(xy[m, 0], xy[m, 1], s=10, color=cmap(i % cmap.N), label=name)
        ax.set_title(method)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)

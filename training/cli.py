"""`fid train|evaluate|compare|predict|explain|embed|suspects` (the `train` extra).

This module imports only click and dataset_db.clitools: Keras is imported inside the commands, so
`fid --help` works without it and a missing install is reported in one line.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import click

from dataset_db.clitools import app, catalog_options, console, echo_json, progress

from . import INSTALL_HINT

ARCH_NAMES = ["inception_resnet_v2", "inception_v3", "xception", "efficientnetv2_s", "convnext_tiny",
              "resnet50v2", "small_cnn"]


def _require_keras(command: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    missing = [m for m in ("keras", "sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if not missing:
        try:
            import keras  # noqa: F401  (fails when no backend is installed)
        except ImportError:
            missing = ["a Keras backend"]
    if missing:
        raise click.ClickException(f"fid {command} needs {', '.join(missing)}: {INSTALL_HINT}")


def _store():
    return app().settings.store


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


@click.command()
@catalog_options
@click.option("--export", "export", metavar="NAME", help="Export to train on (its train and val splits).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model folder to write (self-contained: model, labels.json, history, curves).")
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="inception_resnet_v2", show_default=True)
@click.option("--weights", default="imagenet", show_default=True, metavar="imagenet|none|PATH",
              help="ImageNet (Keras's cached download), none (from scratch) or a local weights file.")
@click.option("--freeze", default="auto", show_default=True, metavar="auto|half|none|N",
              help="half: IRv2 layers before mixed_6a (other archs: first half of the base); N: first N base "
                   "layers; auto: half with pretrained weights, none when training from scratch (the paper).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True,
              help="adam (lr 2e-4, the authors' TF script) or sgd (momentum 0.9, lr 1e-4, their Keras script).")
@click.option("--epochs", type=int, default=None, help="Epochs [default: 60; with --resume: the run's own].")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=None, help="Initial learning rate [default: 2e-4 adam, 1e-4 sgd].")
@click.option("--decay-every", type=float, default=0.5, show_default=True, help="Epochs between learning-rate steps.")
@click.option("--decay-rate", type=float, default=0.96, show_default=True)
@click.option("--augment", default="crop", show_default=True, metavar="LIST",
              help="Comma-separated: crop,rotate,flip,color (or none).")
@click.option("--image-size", type=int, default=None, help="Model input size [default: the arch's, 299 for IRv2].")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Image-decoding workers [default: 1.5 x CPU cores for threads, cores - 2 for processes].")
@click.option("--multiprocessing/--threads", "use_mp", default=False, show_default=True,
              help="Decode in worker processes instead of threads.")
@click.option("--precision", type=click.Choice(["float32", "mixed_bfloat16", "mixed_float16"]), default="float32",
              show_default=True, help="Mixed precision for GPUs (bfloat16 on H100/H200 and TPUs, float16 on older GPUs).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its last epoch.")
def train(export, out, arch, weights, freeze, optimizer, epochs, batch_size, lr, decay_every, decay_rate,
          augment, image_size, seed, workers, use_mp, precision, resume):
    """Train a classifier on an export's train split, validating on its val split."""
    _require_keras("train")
    from .models import parse_augment
    from .train import TrainConfig, train as run_train

    if resume:
        cfg = TrainConfig(epochs=epochs) if epochs else None
    else:
        cfg = TrainConfig(arch=arch, weights=weights, freeze=freeze, optimizer=optimizer, epochs=epochs or 60,
                          batch_size=batch_size, lr=lr, decay_every=decay_every, decay_rate=decay_rate,
                          augment=list(parse_augment(augment)), image_size=image_size, seed=seed,
                          workers=workers, multiprocessing=use_mp, precision=precision)
    res = run_train(app().catalog(), _store(), export, out, cfg, resume=resume, verbose="auto")
    from rich.table import Table

    t = Table(title=f"training run {res['training_run_id']}: {res['arch']} -> {res['out']}")
    t.add_column("")
    t.add_column("value", justify="right")
    for k in ("classes", "train_images", "val_images", "image_size", "input_size", "frozen_layers", "backend"):
        t.add_row(k, str(res[k]))
    for k, v in res["metrics"].items():
        t.add_row(k, _fmt(v))
    console().print(t)


@click.command()
@catalog_options
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["test", "val", "val+test"]), default="test", show_default=True)
@click.option("--export", default=None, metavar="NAME", help="Evaluate on another export [default: the model's].")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder [default: MODEL/eval-SPLIT].")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate(model_dir, split, export, out, batch_size, as_json):
    """Top-1/top-3, per-clade table, confusion matrix and ROC of a model on an export split."""
    _require_keras("evaluate")
    from .evaluate import evaluate as run_eval

    res = run_eval(app().catalog(), _store(), model_dir, split, export, out, batch_size)
    if as_json:
        echo_json({k: res[k] for k in ("out", "top1", "top3", "n", "per_superclade", "roc", "skipped")})
        return
    from rich.table import Table

    t = Table(title=f"{res['export']} ({split}): top-1 {res['top1']:.3f}, top-3 {res['top3']:.3f}, n = {res['n']}")
    for col in ("clade", "precision", "recall", "f1", "support", "most confused with"):
        t.add_column(col, justify="left" if col in ("clade", "most confused with") else "right")
    for c, v in res["per_clade"].items():
        wrong = ", ".join(f"{w['clade']} {w['rate']:.0%}" for w in v["confused_with"])
        t.add_row(c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]), wrong)
    c = console()
    c.print(t)
    roc = res["roc"]
    if "micro_auc" in roc:
        c.print(f"ROC AUC micro {roc['micro_auc']:.3f}, macro {roc['macro_auc']:.3f}")
    if res["skipped"]:
        c.print(f"left out (clades the model does not know): {res['skipped']}")
    c.print(f"reports in {res['out']}")


@click.command()
@catalog_options
@click.argument("run_a")
@click.argument("run_b")
@click.option("--split", default=None, help="Evaluation to compare (eval-SPLIT) [default: test].")
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Plot (PNG).")
def compare(run_a, run_b, split, out):
    """Per-clade recall differences of two runs (model folders or training-run ids) against training-set size."""
    from .compare import compare as run_compare, resolve_run

    a = resolve_run(lambda: app().catalog(), run_a)
    b = resolve_run(lambda: app().catalog(), run_b)
    res = run_compare(a, b, out, split)
    from rich.table import Table

    t = Table(title=f"top-1 {res['top1_a']:.3f} ({a.name}) -> {res['top1_b']:.3f} ({b.name})")
    for col in ("clade", "train A", "train B", "recall A", "recall B", "B - A"):
        t.add_column(col, justify="left" if col == "clade" else "right")
    for r in res["rows"]:
        t.add_row(r["clade"], str(r["train_a"]), str(r["train_b"]), f"{r['recall_a']:.3f}",
                  f"{r['recall_b']:.3f}", f"{r['recall_diff']:+.3f}")
    console().print(t)
    console().print(f"plot: {res['out']}")


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--top", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def predict(model_dir, images, top, as_json):
    """Top clades with probabilities for image files (no catalog needed)."""
    _require_keras("predict")
    from .bundle import predict_paths

    res = predict_paths(model_dir, list(images), top=top)
    if as_json:
        echo_json(res)
        return
    from rich.table import Table

    t = Table()
    t.add_column("image")
    for i in range(top):
        t.add_column(f"#{i + 1}")
    for r in res:
        t.add_row(r["image"], *(f"{p['clade']} {p['p']:.2f}" for p in r["top"]))
    console().print(t)


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--clade", default=None, help="Clade to explain [default: the top prediction].")
@click.option("--guided/--no-guided", default=None,
              help="Also write guided Grad-CAM to OUT-guided.png [default: on with TensorFlow and JAX; "
                   "PyTorch: Grad-CAM only].")
@click.option("--json", "as_json", is_flag=True)
def explain(model_dir, image, out, clade, guided, as_json):
    """Grad-CAM heat map of IMAGE, and guided Grad-CAM (TensorFlow and JAX backends)."""
    _require_keras("explain")
    from .explain import explain as run_explain

    res = run_explain(model_dir, image, out, clade, guided=guided)
    if as_json:
        echo_json({k: v for k, v in res.items() if not hasattr(v, "shape")})
        return
    c = console()
    c.print(f"{res['clade']} (p = {res['p']:.2f}); Grad-CAM written to {res['out']}")
    if res["guided_out"]:
        c.print(f"guided Grad-CAM ({res['guided_relus']} guided ReLUs) written to {res['guided_out']}")
    if res["note"]:
        c.print(f"note: {res['note']}")


@click.command()
@catalog_options
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["train", "val", "test", "val+test"]), default="test", show_default=True)
@click.option("--per-class", type=int, default=40, show_default=True)
@click.option("--export", default=None, metavar="NAME")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--seed", type=int, default=0, show_default=True)
def embed(model_dir, split, per_class, export, out, seed):
    """t-SNE (and UMAP, with umap-learn installed) of pooled features coloured by clade."""
    _require_keras("embed")
    from .embed import embed as run_embed

    res = run_embed(app().catalog(), _store(), model_dir, split, per_class, out, export, seed)
    note = f" ({res['note']})" if res["note"] else ""
    console().print(f"{', '.join(res['methods'])} of {res['n']} images written to {res['out']}{note}")


@click.command()
@catalog_options
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--export", default=None, metavar="NAME", help="Export to check [default: the model's].")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--limit", type=int, default=None, help="Keep at most this many suspects.")
@click.option("--dry-run", is_flag=True, help="List suspects without writing the queue.")
@click.option("--json", "as_json", is_flag=True)
def suspects(model_dir, export, folds, limit, dry_run, as_json):
    """Fill the review suspects queue with images whose label the model disputes (out-of-sample)."""
    _require_keras("suspects")
    from .suspects import find_suspects

    with progress(transient=True) as bar:
        bar.add_task("features + cross-validation", total=None)
        res = find_suspects(app().catalog(), _store(), model_dir, export, folds=folds, limit=limit,
                            write=not dry_run)
    if as_json:
        echo_json(res)
        return
    from rich.table import Table

    t = Table(title=f"{len(res['suspects'])} suspects of {res['n_images']} images ({res['method']}); "
                    f"out-of-sample accuracy {res['oos_accuracy']:.3f}")
    for col in ("image", "given", "predicted", "score"):
        t.add_column(col, justify="right" if col in ("image", "score") else "left")
    for r in res["suspects"][:50]:
        t.add_row(str(r["image_id"]), r["given_clade"], r["predicted_clade"], f"{r['score']:.3f}")
    c = console()
    c.print(t)
    c.print("not written (--dry-run)" if dry_run else f"{res['written']} written to the suspects queue")

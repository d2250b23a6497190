"""Training layer: catalog reads/writes, the input pipeline, metrics, model building, training,
resuming, and the predict/explain/embed/suspects/compare outputs, on a tiny generated export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras_env  # noqa: F401  (threads, and Keras required) before numpy/keras
import keras

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from dataset_db.errors import FidError
from dataset_db.models import Decision, Image, ReviewState, Suspect, TrainingRun
from dataset_db.session import open_catalog

REPO = Path(__file__).resolve().parents[1]


# ---- catalog ----------------------------------------------------------------------------------

def test_export_items_crops_runs_and_suspects(db_url):
    from dataset_db import repo_training as rt

    cat = open_catalog(db_url, create=True)
    with cat.session() as s:
        rt.ensure_clades(s, [("Trilobita", "Arthropoda"), ("Ammonoidea", "Mollusca")])
        ids = rt.add_stored_images(s, [
            {"sha256": "a" * 64, "width": 400, "height": 200, "store_path": "aa/a.jpg",
             "orig_width": 2000, "orig_height": 1000},
            {"sha256": "b" * 64, "width": 100, "height": 100, "store_path": "bb/b.jpg"}])
        d = Decision(image_id=ids[0], reviewer="r", decision="crop", crop_x0=100, crop_y0=50,
                     crop_x1=1100, crop_y1=950)
        s.add(d)
        s.flush()
        s.add(ReviewState(image_id=ids[0], status="accepted", reviewer="r", last_decision_id=d.id,
                          crop_x0=100, crop_y0=50, crop_x1=1100, crop_y1=950))
        rt.create_export(s, "e1", [
            {"image_id": ids[0], "split": "train", "clade": "Trilobita"},
            {"image_id": ids[0], "split": "train", "clade": "Trilobita", "repeat": 1},
            {"image_id": ids[1], "split": "test", "clade": "Ammonoidea"}], taxonomy_version="t1")
    with cat.session() as s:
        train = rt.export_items(s, "e1", ["train"])
        assert [(i["repeat"], i["crop"], i["superclade"]) for i in train] == [
            (0, (20, 10, 220, 190), "Arthropoda"), (1, (20, 10, 220, 190), "Arthropoda")]
        assert len(rt.export_items(s, "e1", ["train"], distinct_images=True)) == 1
        assert [i["crop"] for i in rt.export_items(s, "e1", ["test"])] == [None]
        with pytest.raises(FidError, match=r"unknown export 'nope'; choose from: e1"):
            rt.export_items(s, "nope")
        with pytest.raises(FidError, match="unknown split 'dev'"):
            rt.export_items(s, "e1", ["dev"])
        run = rt.start_training_run(s, "e1", {"arch": "small_cnn"}, "/m")
    # a bad export leaves nothing behind
    with pytest.raises(FidError, match="already exists"):
        with cat.session() as s:
            rt.create_export(s, "e1", [])
    with pytest.raises(FidError, match="unknown split"):
        with cat.session() as s:
            rt.create_export(s, "e2", [{"image_id": ids[1], "split": "holdout", "clade": "Ammonoidea"}])
    with cat.session() as s:
        assert rt.export_names(s) == ["e1"]
        rt.finish_training_run(s, run, {"val_loss": 0.5})
        rt.replace_suspects(s, run, [
            {"image_id": ids[1], "given_clade": "Ammonoidea", "predicted_clade": "Trilobita", "score": 0.4},
            {"image_id": ids[0], "given_clade": "Trilobita", "predicted_clade": "Ammonoidea", "score": 0.9}])
        rt.replace_suspects(s, run, [  # replacing, not appending
            {"image_id": ids[1], "given_clade": "Ammonoidea", "predicted_clade": "Trilobita", "score": 0.4},
            {"image_id": ids[0], "given_clade": "Trilobita", "predicted_clade": "Ammonoidea", "score": 0.9}])
    with cat.session() as s:
        assert [r["image_id"] for r in rt.suspects(s, run)] == [ids[0], ids[1]]
        assert s.get(TrainingRun, run).status == "done"
        assert rt.get_training_run(s, run)["metrics"] == {"val_loss": 0.5}
        with pytest.raises(FidError, match="unknown training run 999"):
            rt.get_training_run(s, 999)
    cat.close()


# ---- input pipeline ---------------------------------------------------------------------------

def test_load_image_crop_and_draft(tmp_path):
    from training.data import ImageSequence, load_image

    a = np.zeros((400, 512, 3), np.uint8)
    a[:, :256] = (250, 0, 0)
    a[:, 256:] = (0, 0, 250)
    PILImage.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    full = load_image(tmp_path / "x.jpg", 64)
    right = load_image(tmp_path / "x.jpg", 64, crop=(300, 0, 512, 400))
    assert full.shape == right.shape == (64, 64, 3) and full.dtype == np.uint8
    assert full[:, :28, 0].mean() > 200 and full[:, 36:, 2].mean() > 200
    assert right[..., 2].mean() > 200 and right[..., 0].mean() < 30
    seq = ImageSequence([tmp_path / "x.jpg"] * 5, [0, 1, 2, 3, 4], size=32, batch_size=2, shuffle=True, seed=1)
    assert len(seq) == 3
    seen = np.concatenate([seq[i][1] for i in range(len(seq))])
    seq.on_epoch_end()
    again = np.concatenate([seq[i][1] for i in range(len(seq))])
    assert sorted(seen) == sorted(again) == [0, 1, 2, 3, 4] and list(seen) != list(again)


# ---- metrics ----------------------------------------------------------------------------------

def test_metrics_match_hand_computed_confusion(tmp_path):
    from training.evaluate import compute_metrics, write_reports

    classes = ["A", "B", "C", "D"]
    sup = ["X", "X", "Y", "Y"]
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    y_pred = [0, 0, 1, 2, 1, 1, 0, 2, 3, 3, 3, 1]
    second = [1, 1, 0, 3, 0, 0, 1, 3, 2, 2, 2, 3]  # runner-up class of each prediction
    probs = np.full((12, 4), 0.1)
    ranked = []
    for i, (p, s2) in enumerate(zip(y_pred, second)):
        s3 = max(set(range(4)) - {p, s2})
        probs[i, p], probs[i, s2], probs[i, s3] = 0.45, 0.25, 0.2
        ranked.append((p, s2, s3))
    m = compute_metrics(y_true, probs, classes, sup)
    cm = np.zeros((4, 4), int)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    assert (m["_confusion"] == cm).all()
    assert m["top1"] == pytest.approx(np.trace(cm) / 12)
    assert m["top3"] == pytest.approx(np.mean([t in r for t, r in zip(y_true, ranked)]))
    assert m["top3"] < 1
    for i, c in enumerate(classes):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum()
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        v = m["per_clade"][c]
        assert (v["precision"], v["recall"], v["f1"], v["support"]) == pytest.approx((prec, rec, f1, cm[i].sum()))
    assert m["per_clade"]["A"]["confused_with"] == [{"clade": "B", "count": 1, "rate": 0.25},
                                                    {"clade": "C", "count": 1, "rate": 0.25}]
    assert m["per_superclade"]["X"] == {"n": 7, "accuracy": pytest.approx(4 / 7),
                                        "superclade_accuracy": pytest.approx(6 / 7)}
    assert 0.5 < m["roc"]["micro_auc"] <= 1 and 0.5 < m["roc"]["macro_auc"] <= 1
    files = write_reports(m, classes, tmp_path / "r", "t")
    data = json.loads(Path(files["metrics"]).read_text())
    assert {"top1", "top3", "n", "per_clade", "per_superclade"} <= set(data) and data["n"] == 12
    rows = list(csv.reader(open(files["confusion_csv"])))
    assert [list(map(int, r[1:])) for r in rows[1:]] == cm.tolist()
    assert "| A | X |" in Path(files["per_clade_md"]).read_text()
    assert all(Path(files[k]).stat().st_size > 1000 for k in ("confusion_png", "roc_png"))


# ---- model building ---------------------------------------------------------------------------

@pytest.mark.slow
def test_irv2_freeze_half_from_mixed_6a():
    from training.models import build_model

    model, info = build_model("inception_resnet_v2", 5, image_size=75, weights=None, freeze_spec="half")
    base = model.get_layer("base")
    names = [layer.name for layer in base.layers]
    assert names.index("mixed_6a") == 274 == info["frozen_layers"]
    assert [layer.trainable for layer in base.layers] == [i >= 274 for i in range(len(names))]
    assert model.get_layer("predictions").trainable and model.output_shape == (None, 5)


def test_small_cnn_freeze_variants_and_bad_options():
    from training.errors import TrainingError
    from training.models import build_model, parse_augment

    model, info = build_model("small_cnn", 3, 32, None, "half", parse_augment("crop,flip"))
    base = model.get_layer("base")
    n = len(base.layers)
    assert info["frozen_layers"] == n // 2 and info["input_size"] == 36
    assert [layer.trainable for layer in base.layers] == [i >= n // 2 for i in range(n)]
    # random crops in training, the centre at inference: both reach the base at 32 px
    x = np.zeros((2, 36, 36, 3), np.uint8)
    assert model.predict(x, verbose=0).shape == (2, 3) and model(x, training=True).shape == (2, 3)
    _, info = build_model("small_cnn", 3, 32, None, "3")
    assert info["frozen_layers"] == 3 and info["input_size"] == 32
    with pytest.raises(TrainingError, match="unknown architecture 'vgg'; choose from: inception_resnet_v2"):
        build_model("vgg", 3)
    with pytest.raises(TrainingError, match="unknown augmentation 'blur'"):
        parse_augment("crop,blur")
    with pytest.raises(TrainingError, match="unknown --freeze 'most'"):
        build_model("small_cnn", 3, 32, None, "most")
    with pytest.raises(TrainingError, match="no ImageNet weights"):
        build_model("small_cnn", 3, 32, "imagenet")


# ---- training end to end ----------------------------------------------------------------------

def _cli(*args):
    from click.testing import CliRunner

    from dataset_db.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


TRAIN_ARGS = ["--arch", "small_cnn", "--weights", "none", "--freeze", "none", "--image-size", "40",
              "--batch-size", "8", "--lr", "3e-3", "--augment", "flip", "--workers", "1"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A SQLite catalog with a 3-class synthetic export and a small_cnn trained on it by `fid train`."""
    from training.synthetic import make_synthetic_export

    root = tmp_path_factory.mktemp("train")
    db, store = root / "catalog.sqlite", root / "store"
    cat = open_catalog(f"sqlite:///{db}", create=True)
    make_synthetic_export(cat, store, "syn", n_classes=3, per_split={"train": 40, "val": 10, "test": 15}, seed=3)
    res = _cli("--db", db, "--store", store, "train", "--export", "syn", "--out", root / "m1", "--epochs", 4,
               *TRAIN_ARGS)
    assert res.exit_code == 0, res.output
    yield {"root": root, "db": db, "store": store, "cat": cat, "model": root / "m1", "train_output": res.output}
    cat.close()


@pytest.mark.slow
def test_small_cnn_learns_and_records_its_run(project):
    model = project["model"]
    meta = json.loads((model / "labels.json").read_text())
    assert [c["clade"] for c in meta["classes"]] == ["Trilobita", "Ammonoidea", "Crinoidea"]
    assert meta["classes"][0]["superclade"] == "Arthropoda"
    assert meta["export"] == "syn" and meta["taxonomy_version"] == "synthetic" and meta["fid_version"]
    assert meta["image_size"] == meta["input_size"] == 40 and meta["train_counts"] == {
        "Trilobita": 40, "Ammonoidea": 40, "Crinoidea": 40}
    history = list(csv.DictReader(open(model / "history.csv")))
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    assert (model / "curves.png").stat().st_size > 1000 and (model / "model.keras").exists()
    assert not (model / "backup").exists()
    with project["cat"].session() as s:
        run = s.get(TrainingRun, meta["training_run_id"])
        assert run.status == "done" and run.metrics["epochs"] == 4 and run.config["arch"] == "small_cnn"

    res = _cli("--db", project["db"], "--store", project["store"], "evaluate", "--model", model, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n"] == 45 and out["top1"] >= 0.7, out  # chance is 1/3
    ev = model / "eval-test"
    for name in ("metrics.json", "per_clade.csv", "per_clade.md", "confusion_matrix.csv", "confusion_matrix.png",
                 "roc.json", "roc.png", "per_superclade.csv", "predictions.csv"):
        assert (ev / name).stat().st_size > 0, name
    with project["cat"].session() as s:
        assert s.get(TrainingRun, meta["training_run_id"]).metrics["eval_test"]["n"] == 45


@pytest.mark.slow
def test_predict_explain_embed_suspects(project, tmp_path):
    from training.explain import explain

    model, store = project["model"], project["store"]
    with project["cat"].session() as s:
        paths = [store / p for p in s.scalars(select(Image.store_path).order_by(Image.id).limit(2))]
    res = _cli("predict", "--model", model, *paths, "--json")
    assert res.exit_code == 0, res.output
    pred = json.loads(res.output)
    assert len(pred) == 2 and len(pred[0]["top"]) == 3
    assert sum(p["p"] for p in pred[0]["top"]) == pytest.approx(1, abs=1e-4)
    assert "Trilobita" in _cli("predict", "--model", model, paths[0]).output

    ex = explain(model, paths[0], tmp_path / "cam.png")
    assert ex["cam_shape"] == [5, 5] and 0 <= ex["cam"].min() and ex["cam"].max() == pytest.approx(1)
    assert (tmp_path / "cam.png").stat().st_size > 1000
    res = _cli("explain", "--model", model, paths[0], "--out", tmp_path / "cam2.png", "--clade", "Crinoidea")
    assert res.exit_code == 0 and "Crinoidea" in res.output, res.output

    res = _cli("--db", project["db"], "--store", store, "embed", "--model", model, "--per-class", 10,
               "--out", tmp_path / "emb.png")
    assert res.exit_code == 0 and "t-SNE" in res.output and " of 30 images" in res.output, res.output
    assert (tmp_path / "emb.png").stat().st_size > 1000

    # flip labels of three training images: the out-of-sample suspects must put them first
    from training.suspects import find_suspects, out_of_sample_probs, rank_suspects

    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c * 3, 1, (20, 4)) for c in range(3)])
    labels = np.repeat(np.arange(3), 20)
    labels[[0, 25, 45]] = [1, 2, 0]
    idx, _ = rank_suspects(labels, out_of_sample_probs(feats, labels, 3, seed=0))
    assert set(idx[:3]) == {0, 25, 45}

    res = find_suspects(project["cat"], store, model)
    assert res["n_images"] == 195 and res["written"] == len(res["suspects"])
    with project["cat"].session() as s:
        rows = s.scalars(select(Suspect).order_by(Suspect.score.desc())).all()
        assert len(rows) == res["written"]
        assert all(r.training_run_id == json.loads((model / "labels.json").read_text())["training_run_id"]
                   for r in rows)
    scores = [r["score"] for r in res["suspects"]]
    assert all(r["given_clade"] != r["predicted_clade"] for r in res["suspects"]) or "cleanlab" in res["method"]
    if "cleanlab" not in res["method"]:
        assert scores == sorted(scores, reverse=True)


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_interrupted_run_resumes_at_next_epoch(project):
    from training.train import TrainConfig, read_history, train

    out = project["root"] / "m2"
    cfg = TrainConfig(arch="small_cnn", weights="none", freeze="none", epochs=3, batch_size=8, lr=3e-3,
                      augment=["flip"], image_size=40, workers=1)
    steps = 15  # 120 train images / 8

    class CrashAtEpoch1(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise _Crash()

    with pytest.raises(_Crash):
        train(project["cat"], project["store"], "syn", out, cfg, callbacks=[CrashAtEpoch1()], verbose=0)
    assert (out / "backup").exists() and [r["epoch"] for r in read_history(out)] == [0]
    run_id = json.loads((out / "labels.json").read_text())["training_run_id"]
    with project["cat"].session() as s:
        assert s.get(TrainingRun, run_id).status == "interrupted"
    res = _cli("--db", project["db"], "--store", project["store"], "train", "--export", "syn", "--out", out)
    assert res.exit_code != 0 and "--resume" in res.output

    class Record(keras.callbacks.Callback):
        seen: list = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append((epoch, int(self.model.optimizer.iterations)))

    train(project["cat"], project["store"], None, out, None, resume=True, callbacks=[Record()], verbose=0)
    # epochs 1 and 2 only, and the optimizer (hence the learning-rate step) continued from epoch 0's end
    assert Record.seen == [(1, steps), (2, 2 * steps)]
    assert [r["epoch"] for r in read_history(out)] == [0, 1, 2] and not (out / "backup").exists()
    with project["cat"].session() as s:
        assert s.get(TrainingRun, run_id).status == "done"

    # compare the two runs (the paper's Figure 5 machinery)
    for m in (project["model"], out):
        assert _cli("--db", project["db"], "--store", project["store"], "evaluate", "--model", m).exit_code == 0
    first = json.loads((project["model"] / "labels.json").read_text())["training_run_id"]
    res = _cli("--db", project["db"], "compare", str(first), out, "--out", out / "cmp.png")
    assert res.exit_code == 0, res.output
    assert "Crinoidea" in res.output and (out / "cmp.png").stat().st_size > 1000


# ---- CLI without Keras ------------------------------------------------------------------------

def test_cli_lists_commands_and_explains_missing_keras(tmp_path):
    res = _cli("--help")
    for name in ("train", "evaluate", "compare", "predict", "explain", "embed", "suspects"):
        assert name in res.output
    block = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('keras', 'tensorflow', 'jax'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "_orig = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in ('keras', 'tensorflow') else _orig(n, *a)\n"
        "from dataset_db.cli import main\n"
        "main(['train', '--export', 'e', '--out', sys.argv[1]])\n")
    p = subprocess.run([sys.executable, "-c", block, str(tmp_path / "m")], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e '.[train]'" in lines[0] and "keras" in lines[0], p.stderr


def test_freeze_auto_follows_the_paper():
    """Pretrained weights: the shallow half frozen; from scratch: every layer trains (Table 2)."""
    from training.models import resolve_freeze

    assert resolve_freeze("auto", "inception_resnet_v2", "imagenet") == "half"
    assert resolve_freeze("auto", "inception_resnet_v2", "/w/irv2.weights.h5") == "half"
    assert resolve_freeze("auto", "inception_resnet_v2", None) == "none"
    assert resolve_freeze("auto", "small_cnn", "imagenet") == "none"
    assert resolve_freeze("12", "xception", None) == "12"
    assert resolve_freeze("HALF", "xception", None) == "half"


@pytest.mark.slow
def test_mixed_precision_training(project, tmp_path):
    """--precision mixed_bfloat16: conv layers compute in bfloat16, the softmax head stays float32,
    and the process-wide dtype policy is left as it was."""
    before = keras.config.dtype_policy().name
    out = tmp_path / "mixed"
    res = _cli("--db", project["db"], "--store", project["store"], "train", "--export", "syn", "--out", out,
               "--epochs", 1, *TRAIN_ARGS, "--precision", "mixed_bfloat16")
    assert res.exit_code == 0, res.output
    assert keras.config.dtype_policy().name == before
    model = keras.saving.load_model(out / "model.keras")
    policies = {layer.dtype_policy.name for layer in model.get_layer("base").layers
                if isinstance(layer, keras.layers.Conv2D)}
    assert policies == {"mixed_bfloat16"}
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert json.loads((out / "labels.json").read_text())["config"]["precision"] == "mixed_bfloat16"
    bad = _cli("--db", project["db"], "--store", project["store"], "train", "--export", "syn", "--out",
               tmp_path / "x", "--precision", "float8")
    assert bad.exit_code == 2 and "'float8' is not one of 'float32', 'mixed_bfloat16', 'mixed_float16'" in bad.output

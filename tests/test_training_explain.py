"""Grad-CAM and guided Grad-CAM (`fid explain`): the guided ReLU's gradient rule, guided backprop on
a small network against a gradient computed by hand from its weights, guided Grad-CAM on small_cnn
(and IRv2, slow), the CLI's two PNGs, and the same on KERAS_BACKEND=jax in a subprocess (slow)."""

from __future__ import annotations

import importlib.util
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

REPO = Path(__file__).resolve().parents[1]

GUIDED = keras.backend.backend() in ("tensorflow", "jax")
needs_guided = pytest.mark.skipif(not GUIDED, reason=f"no guided Grad-CAM on {keras.backend.backend()}")


def check_guided_relu_rule():
    """Forward is relu; backward is the upstream gradient where upstream > 0 and input > 0, else 0."""
    from training.explain import guided_relu_op, value_and_grad

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    x[0, 0, :3] = (0.0, -1e-3, 1e-3)
    up = rng.normal(size=x.shape).astype("float32")
    op = guided_relu_op()
    assert np.array_equal(np.asarray(op(keras.ops.convert_to_tensor(x))), np.maximum(x, 0))
    _, g = value_and_grad(lambda t: keras.ops.sum(op(t) * up), x)
    want = np.where((up > 0) & (x > 0), up, 0)
    assert np.array_equal(g, want)
    # able to fail: the plain relu gradient lets negative upstream gradients through
    assert ((up < 0) & (x > 0)).any() and not np.array_equal(up * (x > 0), want)


def check_guided_mlp():
    """Guided backprop through relu layers of all three kinds (Activation, ReLU, fused in Dense)
    equals the rule applied by hand, layer by layer, to the network's own weights."""
    from training.explain import guided_backprop, guided_model

    inp = keras.Input((7,))
    h = keras.layers.Dense(6, activation="relu", name="d1")(inp)
    h = keras.layers.Dense(5, name="d2")(h)
    h = keras.layers.ReLU(name="r2")(h)
    h = keras.layers.Dense(4, name="d3")(h)
    h = keras.layers.Activation("relu", name="r3")(h)
    out = keras.layers.Dense(3, activation="softmax", name="predictions")(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(1)
    for layer in model.layers[1:]:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    x = rng.normal(size=7).astype("float32")
    gm, n = guided_model(model)
    assert n == 3
    probs = np.asarray(model(x[None]))[0]
    logits = np.asarray(gm(x[None], training=False))[0]
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(), probs, atol=1e-5)  # same weights, no softmax
    (w1, b1), (w2, b2), (w3, b3), (w4, _) = (model.get_layer(k).get_weights()
                                             for k in ("d1", "d2", "d3", "predictions"))
    a1 = x @ w1 + b1
    a2 = np.maximum(a1, 0) @ w2 + b2
    a3 = np.maximum(a2, 0) @ w3 + b3
    differs = []
    for c in range(3):
        g, plain = w4[:, c], w4[:, c]
        for a, w in ((a3, w3), (a2, w2), (a1, w1)):
            g = w @ (g * ((g > 0) & (a > 0)))
            plain = w @ (plain * (a > 0))
        got = guided_backprop(gm, x, c)
        assert np.allclose(got, g, rtol=1e-4, atol=1e-5), (got, g)
        differs.append(not np.allclose(got, plain, atol=1e-5))
    assert any(differs)  # able to fail: guided differs from the plain gradient for some class


def check_small_cnn():
    from training.explain import guided_gradcam
    from training.models import build_model, parse_augment

    # random-crop training: the model centre-crops its 36 px input to 32 px at inference
    model, info = build_model("small_cnn", 3, 32, None, "none", parse_augment("crop,flip"))
    assert info["input_size"] == 36
    x = np.random.default_rng(2).integers(0, 256, (36, 36, 3)).astype("uint8")
    r = guided_gradcam(model, x)
    assert r["relus"] == 4 and r["cam"].shape == (4, 4)
    assert r["heat"].shape == (36, 36) and r["saliency"].shape == r["guided_gradcam"].shape == (36, 36, 3)
    inner = np.zeros((36, 36), bool)
    inner[2:34, 2:34] = True
    assert r["heat"][~inner].max() == 0 and r["heat"].max() > 0.5           # the map covers the crop
    assert np.abs(r["saliency"][~inner]).max() == 0 and np.abs(r["saliency"]).max() > 0
    assert np.allclose(r["guided_gradcam"], r["saliency"] * r["heat"][..., None])
    assert np.count_nonzero(r["guided_gradcam"]) > 100 and r["guided_gradcam"].std() > 0
    return r


def write_bundle(root: Path, size: int = 32) -> tuple[Path, Path]:
    """An untrained small_cnn model folder (what `fid train` writes, minus history) and an image."""
    from training.bundle import MODEL_FILE, write_labels
    from training.models import build_model

    model, info = build_model("small_cnn", 3, size, None, "none", ())
    mdir = root / "m"
    mdir.mkdir(parents=True)
    model.save(mdir / MODEL_FILE)
    write_labels(mdir, {**info, "classes": [{"clade": c, "superclade": s} for c, s in (
        ("Trilobita", "Arthropoda"), ("Ammonoidea", "Mollusca"), ("Crinoidea", "Echinodermata"))]})
    a = np.zeros((80, 80, 3), np.uint8)
    a[20:60, 30:50] = (230, 200, 40)
    img = root / "fossil.jpg"
    PILImage.fromarray(a).save(img, quality=95)
    return mdir, img


@needs_guided
def test_guided_relu_gradient_rule():
    check_guided_relu_rule()


@needs_guided
def test_guided_backprop_matches_hand_computed_gradient():
    check_guided_mlp()


@needs_guided
def test_guided_gradcam_small_cnn():
    check_small_cnn()


def _cli(*args):
    from click.testing import CliRunner

    from dataset_db.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_writes_gradcam_and_guided_pngs(tmp_path):
    mdir, img = write_bundle(tmp_path)
    res = _cli("explain", "--model", mdir, img, "--out", tmp_path / "out" / "cam.png", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["out"] == str(tmp_path / "out" / "cam.png") and (tmp_path / "out" / "cam.png").stat().st_size > 1000
    if GUIDED:
        assert out["guided_out"] == str(tmp_path / "out" / "cam-guided.png") and out["guided_relus"] == 4
        assert (tmp_path / "out" / "cam-guided.png").stat().st_size > 1000 and out["note"] is None
    else:
        assert out["guided_out"] is None and "not supported" in out["note"]
    res = _cli("explain", "--model", mdir, img, "--out", tmp_path / "plain.png", "--no-guided", "--clade", "Crinoidea")
    assert res.exit_code == 0 and "Crinoidea" in res.output and "guided" not in res.output, res.output
    assert (tmp_path / "plain.png").exists() and not (tmp_path / "plain-guided.png").exists()
    if GUIDED:
        res = _cli("explain", "--model", mdir, img, "--out", tmp_path / "g.png")
        assert res.exit_code == 0 and f"written to {tmp_path / 'g-guided.png'}" in res.output.replace("\n", ""), \
            res.output
    res = _cli("explain", "--model", mdir, img, "--out", tmp_path / "x.png", "--clade", "Nope")
    assert res.exit_code != 0 and "unknown clade 'Nope'" in res.output


@pytest.mark.slow
@needs_guided
def test_guided_gradcam_inception_resnet_v2():
    from training.explain import guided_gradcam
    from training.models import build_model

    model, _ = build_model("inception_resnet_v2", 3, image_size=75, weights=None, freeze_spec="half")
    base = model.get_layer("base")
    relus = sum(isinstance(la, keras.layers.Activation) and la.activation is keras.activations.relu
                for la in base.layers)
    assert relus > 200
    x = np.random.default_rng(3).integers(0, 256, (75, 75, 3)).astype("uint8")
    r = guided_gradcam(model, x)
    assert r["relus"] == relus
    assert r["saliency"].shape == r["guided_gradcam"].shape == (75, 75, 3) and r["heat"].shape == (75, 75)
    assert np.count_nonzero(r["guided_gradcam"]) > 1000


JAX_SCRIPT = r'''
import json, sys
from pathlib import Path
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/tests"]  # the repo, and the tests' shared modules
import keras
import test_training_explain as t
from training.explain import explain

root = Path(sys.argv[1])
t.check_guided_relu_rule()
t.check_guided_mlp()
t.check_small_cnn()
mdir, img = t.write_bundle(root)
res = explain(mdir, img, root / "cam.png")
print(json.dumps({"backend": keras.backend.backend(), "guided_out": res["guided_out"], "relus": res["guided_relus"]}))
'''


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_guided_gradcam_on_jax(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2",
           "OMP_NUM_THREADS": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path), str(REPO)], env=env, capture_output=True,
                       text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"backend": "jax", "guided_out": str(tmp_path / "cam-guided.png"), "relus": 4}
    assert (tmp_path / "cam.png").stat().st_size > 1000 and (tmp_path / "cam-guided.png").stat().st_size > 1000

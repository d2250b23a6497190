"""The same training code on KERAS_BACKEND=jax (CPU JAX), in subprocesses: a small training run
with random-crop augmentation, evaluation and Grad-CAM, and the GPU benchmark's --tiny mode."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("jax") is None:
    if os.environ.get("CI"):
        pytest.fail("jax is not installed; CI must run the JAX path (pip install jax)", pytrace=False)
    pytest.skip("jax is not installed (pip install jax): the KERAS_BACKEND=jax tests need it",
                allow_module_level=True)

ENV = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
       "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2",
       "OMP_NUM_THREADS": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}

SCRIPT = r'''
import json, sys
from pathlib import Path
import keras
from dataset_db.session import open_catalog
from training.synthetic import make_synthetic_export
from training.train import TrainConfig, train
from training.evaluate import evaluate
from training.explain import explain

root = Path(sys.argv[1])
cat = open_catalog(f"sqlite:///{root / 'c.sqlite'}", create=True)
make_synthetic_export(cat, root / "store", "syn", 3, {"train": 16, "val": 6, "test": 6}, seed=1)
cfg = TrainConfig(arch="small_cnn", weights="none", freeze="none", epochs=2, batch_size=8, lr=3e-3,
                  augment=["crop", "flip"], image_size=32, workers=1)
res = train(cat, root / "store", "syn", root / "m", cfg, verbose=0)
ev = evaluate(cat, root / "store", root / "m", "test")
img = next((root / "store").rglob("*.jpg"))
ex = explain(root / "m", img, root / "cam.png")
print(json.dumps({"backend": keras.backend.backend(), "epochs": res["metrics"]["epochs"], "n": ev["n"],
                  "top1": ev["top1"], "cam_shape": ex["cam_shape"], "cam_max": float(ex["cam"].max()),
                  "explain_backend": ex["backend"]}))
'''


@pytest.mark.slow
def test_training_evaluate_explain_on_jax(tmp_path):
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=ENV, capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["backend"] == out["explain_backend"] == "jax"
    assert out["epochs"] == 2 and out["n"] == 18 and 0 <= out["top1"] <= 1
    assert out["cam_shape"] == [4, 4] and out["cam_max"] == pytest.approx(1.0)
    assert (tmp_path / "m" / "model.keras").exists() and (tmp_path / "cam.png").stat().st_size > 1000

AUG_SCRIPT = r'''
import json, sys
import numpy as np
import keras
from training.models import build_model, make_optimizer
augment = tuple(sys.argv[1].split(","))
model, info = build_model("small_cnn", 3, 24, None, "none", augment, seed=1)
# jit_compile=True is what "auto" resolves to on a GPU (TensorFlow turns XLA off on CPU-only machines)
model.compile(optimizer=make_optimizer("adam", None, 2), loss="sparse_categorical_crossentropy", jit_compile=True)
x = np.random.default_rng(0).integers(0, 256, (8, info["input_size"], info["input_size"], 3), dtype=np.uint8)
model.fit(x, (np.arange(8) % 3).astype("int32"), batch_size=4, epochs=1, verbose=0)
out = np.asarray(model.get_layer("aug_crop")(x.astype("float32"), training=True))
n = info["input_size"] - 24 + 1
offsets = [[(i, j) for i in range(n) for j in range(n) if np.array_equal(out[k], x[k, i:i + 24, j:j + 24, :])]
           for k in range(len(x))]
print(json.dumps({"backend": keras.backend.backend(), "jit": bool(model.jit_compile), "offsets": offsets}))
'''


@pytest.mark.parametrize("backend,augment,jit", [("jax", "crop,flip,rotate", True),
                                                 ("tensorflow", "crop,flip", True),
                                                 ("tensorflow", "crop,rotate", False)])
def test_augmentation_keeps_xla(backend, augment, jit):
    """Keras 3.15's RandomCrop and RandomRotation say they cannot be compiled, which turns XLA off
    for the whole model (on JAX: IRv2 op by op, 18 img/s on an H100 instead of ~2,200). fid's
    crop compiles everywhere and its rotation on JAX; the crop is still a real random crop, its
    position drawn per image (Keras draws one per batch)."""
    p = subprocess.run([sys.executable, "-c", AUG_SCRIPT, augment], env={**ENV, "KERAS_BACKEND": backend},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend and out["jit"] is jit
    assert all(len(o) == 1 for o in out["offsets"]), out["offsets"]  # every image is one exact crop
    assert len({tuple(o[0]) for o in out["offsets"]}) > 1  # ... at its own position


@pytest.mark.slow
def test_gpu_benchmark_tiny_on_cpu_jax(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "bench" / "train_gpu.py"), "--tiny", "--json",
                        str(tmp_path / "b.json")], env=ENV, capture_output=True, text=True, timeout=600,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["backend"] == "jax" and res["synthetic_img_s"] > 0 and res["pipeline_img_s"] > 0
    assert res["ratio_b_over_a"] == pytest.approx(res["pipeline_img_s"] / res["synthetic_img_s"], rel=0.01)
    assert set(res["pipelines"]) == {"threads", "processes"} and res["loader"] in res["pipelines"]
    assert all(v["decode_ceiling_img_s"] > 0 for v in res["pipelines"].values())
    assert "b/a =" in p.stdout
    # the benchmark must not pull in TensorFlow or the catalog (only fid's exception classes)
    code = ("import sys, runpy; sys.argv=['x','--help']\n"
            "try: runpy.run_path(sys.argv[0] if False else %r, run_name='__main__')\n"
            "except SystemExit: pass\n"
            "import training.data, training.models\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'sqlalchemy', 'scrapy', 'flask')\n"
            "       or (m.startswith('dataset_db') and m not in ('dataset_db', 'dataset_db.errors'))]\n"
            "print(bad)") % str(REPO / "bench" / "train_gpu.py")
    q = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert q.returncode == 0 and q.stdout.strip().splitlines()[-1] == "[]", q.stdout + q.stderr[-2000:]

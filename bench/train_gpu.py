#!/usr/bin/env python
"""Training throughput of Inception-ResNet-v2 on Keras 3 + JAX: is the input pipeline the bottleneck?

Prints images/s for (a) synthetic in-memory batches and (b) the real input pipeline
(training/data.py: a keras.utils.PyDataset decoding 512-px JPEGs from disk with Pillow's draft
mode in worker threads or processes, augmentation on the accelerator with Keras preprocessing
layers), both with KERAS_BACKEND=jax and the mixed_bfloat16 policy, and the ratio b/a (target
>= 0.90). The model is `fid train`'s own (training/models.py: IRv2, the layers before mixed_6a
frozen, random crop + flip + rotation on the accelerator, Adam on the paper's decay schedule), so
the number is the one a user gets. (b) is measured once per loader kind (``--loaders``); the
headline ratio uses the faster one and says which. A third figure, the decode ceiling, is how
fast the same workers produce batches with no model at all.

Imports only keras, jax, numpy and Pillow (plus training/data.py and training/models.py, which
are keras + Pillow + numpy, and the exception classes of dataset_db/errors.py): no catalog, no
TensorFlow. Generates its own JPEGs in a temporary folder.

    python bench/train_gpu.py                # one GPU: 299 px, batch 128, a few minutes
    python bench/train_gpu.py --tiny         # CPU smoke run: 75 px, batch 4, small JPEGs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from multiprocessing.pool import ThreadPool
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOADERS = ("threads", "processes")


def make_jpeg(args) -> None:
    """A photo-like JPEG: smooth random colour fields plus fine noise, longer side ``side``."""
    path, side, seed = args
    rng = np.random.default_rng(seed)
    h = int(side * rng.uniform(0.6, 1.0))
    low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(low).resize((side, h), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.int16) + rng.integers(-20, 21, (h, side, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def build(image_size: int, classes: int, steps_per_epoch: int, jit: bool = True):
    """`fid train --arch inception_resnet_v2 --freeze half --augment crop,flip,rotate` as built there."""
    from training.models import build_model, make_optimizer

    model, info = build_model("inception_resnet_v2", classes, image_size, None, "half",
                              ("crop", "flip", "rotate"), seed=1)
    model.compile(optimizer=make_optimizer("adam", None, steps_per_epoch),
                  loss="sparse_categorical_crossentropy", jit_compile=jit)
    assert model.get_layer("base").layers[info["frozen_layers"]].name == "mixed_6a"
    return model, info


def _block(logs) -> None:
    """Wait until the step that produced ``logs`` has finished on the device."""
    for v in (logs or {}).values():
        np.asarray(v)


def timed_fit(model, data, warmup: int) -> float:
    """Images/s over the steps after ``warmup`` (compilation and queue filling excluded).

    The clock waits for the device only at the warmup boundary and at the last step: a wait after
    every step would stop JAX from overlapping the next batch's loading with this one's compute,
    and would understate the real pipeline more than the synthetic one.
    """
    import keras

    last = len(data) - 1
    if last <= warmup:
        raise SystemExit(f"need more than {warmup + 1} steps, got {len(data)}")
    marks = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch in (warmup, last):
                _block(logs)
                marks[batch] = time.perf_counter()

    model.fit(data, epochs=1, verbose=0, callbacks=[Clock()])
    return (last - warmup) * data.batch_size / (marks[last] - marks[warmup])


def decode_ceiling(seq, kind: str, workers: int, batches: int) -> float:
    """Images/s the same number of workers produce alone (no model, no Keras queue), one batch per
    task as Keras hands them out: roughly the loader's upper bound."""
    pool_cls = ThreadPool if kind == "threads" else Pool
    with pool_cls(workers) as pool:
        pool.map(int, range(workers))  # start-up out of the clock
        t0 = time.perf_counter()
        n = sum(len(b[1]) for b in pool.imap_unordered(seq.__getitem__, range(batches)))
        return n / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run (75 px, batch 4, few steps)")
    ap.add_argument("--image-size", type=int, default=299)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, queue filling)")
    ap.add_argument("--jpeg-side", type=int, default=512)
    ap.add_argument("--unique-images", type=int, default=1024, help="distinct JPEGs written (then reused)")
    ap.add_argument("--workers", type=int, default=None,
                    help="decoding workers per loader (default: as `fid train`, 1.5 x the cores for threads, "
                         "all cores but two for processes)")
    ap.add_argument("--loaders", default=",".join(LOADERS),
                    help=f"loader kinds to time for (b), comma-separated: {', '.join(LOADERS)}")
    ap.add_argument("--policy", default="mixed_bfloat16")
    ap.add_argument("--no-jit", dest="jit", action="store_false", help="run the train step without XLA")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here (after each phase)")
    a = ap.parse_args(argv)
    loaders = [k.strip() for k in a.loaders.split(",") if k.strip()]
    bad = [k for k in loaders if k not in LOADERS]
    if bad or not loaders:
        ap.error(f"unknown loader {bad[0] if bad else a.loaders!r}; choose from: {', '.join(LOADERS)}")
    if a.tiny:  # CPUs emulate bfloat16 slowly: float32 there
        a.image_size, a.batch_size, a.steps, a.warmup = 75, 4, 2, 1
        a.jpeg_side, a.unique_images, a.workers, a.policy = 128, 8, min(2, a.workers or 2), "float32"
        a.jit = False  # XLA's whole-graph CPU compile of IRv2 would dominate a tiny run

    res: dict = {"policy": a.policy, "jit": a.jit, "image_size": a.image_size, "batch_size": a.batch_size,
                 "timed_steps": a.steps, "jpeg_side": a.jpeg_side}

    def save():
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))

    # write the JPEGs first: forking after JAX has started its threads may deadlock
    tmpdir = tempfile.TemporaryDirectory(prefix="fid-bench-")
    paths = [str(Path(tmpdir.name) / f"{i:05d}.jpg") for i in range(a.unique_images)]
    t0 = time.perf_counter()
    with Pool(max(1, min(len(paths), a.workers or os.cpu_count() or 1))) as pool:
        pool.map(make_jpeg, [(p, a.jpeg_side, i) for i, p in enumerate(paths)])
    res["jpeg_generation_s"] = round(time.perf_counter() - t0, 2)

    import jax
    import keras

    from training.data import ImageSequence, RepeatBatch, default_workers

    classes = 50
    n_steps = a.warmup + 1 + a.steps
    keras.config.set_dtype_policy(a.policy)  # as `fid train --precision`: layers take it when built
    t0 = time.perf_counter()
    model, info = build(a.image_size, classes, n_steps, a.jit)
    input_size = info["input_size"]
    res.update(backend=keras.backend.backend(), keras_version=keras.__version__, jax_version=jax.__version__,
               device=str(jax.devices()[0]), input_size=input_size, build_s=round(time.perf_counter() - t0, 1))
    print(f"backend {res['backend']} (keras {keras.__version__}, jax {jax.__version__}) on {res['device']}, "
          f"{a.policy}, IRv2 {a.image_size}px (decoded at {input_size}), batch {a.batch_size}", flush=True)
    rng = np.random.default_rng(0)

    x = rng.integers(0, 256, (a.batch_size, input_size, input_size, 3), dtype=np.uint8)
    y = rng.integers(0, classes, a.batch_size).astype(np.int32)
    synthetic = RepeatBatch(x, y, n_steps)
    synthetic.batch_size = a.batch_size
    t0 = time.perf_counter()
    ips_a = timed_fit(model, synthetic, a.warmup)
    res["synthetic_fit_s"] = round(time.perf_counter() - t0, 1)  # includes the XLA compile
    res["synthetic_img_s"] = round(ips_a, 2)
    print(f"(a) synthetic batches:       {ips_a:9.1f} img/s   (first fit incl. compile: {res['synthetic_fit_s']} s)",
          flush=True)
    save()

    files = [paths[i % len(paths)] for i in range(n_steps * a.batch_size)]
    labels = rng.integers(0, classes, len(files))
    pipeline = {}
    try:
        for kind in loaders:
            workers = a.workers or default_workers(kind == "processes")
            seq = ImageSequence(files, labels, size=input_size, batch_size=a.batch_size, shuffle=True,
                                workers=workers, use_multiprocessing=kind == "processes",
                                max_queue_size=max(10, 2 * workers))
            ceiling = decode_ceiling(seq, kind, workers, len(seq))
            ips_b = timed_fit(model, seq, a.warmup)
            pipeline[kind] = {"workers": workers, "pipeline_img_s": round(ips_b, 2),
                              "decode_ceiling_img_s": round(ceiling, 2), "ratio_b_over_a": round(ips_b / ips_a, 3)}
            res["pipelines"] = pipeline
            print(f"(b) JPEG pipeline, {workers:2d} {kind:9s} {ips_b:9.1f} img/s   b/a = {ips_b / ips_a:.3f}   "
                  f"(decode alone: {ceiling:.0f} img/s)", flush=True)
            save()
    finally:
        tmpdir.cleanup()

    best = max(pipeline, key=lambda k: pipeline[k]["pipeline_img_s"])
    res.update(loader=best, pipeline_img_s=pipeline[best]["pipeline_img_s"],
               ratio_b_over_a=pipeline[best]["ratio_b_over_a"])
    save()
    print(f"b/a = {res['ratio_b_over_a']:.3f} with {pipeline[best]['workers']} {best}  (target >= 0.90)")
    return res


if __name__ == "__main__":
    main()

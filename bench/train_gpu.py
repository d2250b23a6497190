#!/usr/bin/env python
"""Training throughput of Inception-ResNet-v2 on Keras 3 + JAX: is the input pipeline the bottleneck?

Prints images/s for (a) synthetic in-memory batches and (b) the real input pipeline
(training/data.py: a keras.utils.PyDataset decoding 512-px JPEGs from disk with Pillow's draft
mode in worker processes, augmentation on the accelerator with Keras preprocessing layers), both
with KERAS_BACKEND=jax and the mixed_bfloat16 policy, and the ratio b/a (target >= 0.90).

Imports only keras, jax, numpy and Pillow (plus training/data.py, which is keras + Pillow +
numpy): no catalog, no TensorFlow. Generates its own JPEGs in a temporary folder.

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
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_jpeg(args) -> None:
    """A photo-like JPEG: smooth random colour fields plus fine noise, longer side ``side``."""
    path, side, seed = args
    rng = np.random.default_rng(seed)
    h = int(side * rng.uniform(0.6, 1.0))
    low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(low).resize((side, h), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.int16) + rng.integers(-20, 21, (h, side, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def build(image_size: int, input_size: int, classes: int, jit: bool = True):
    import keras

    inp = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = keras.layers.RandomCrop(image_size, image_size, seed=1)(inp)
    x = keras.layers.CenterCrop(image_size, image_size)(x)  # inference only: a no-op in training
    x = keras.layers.RandomFlip("horizontal", seed=1)(x)
    x = keras.layers.RandomRotation(0.1, seed=1)(x)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    base = keras.applications.InceptionResNetV2(include_top=False, weights=None,
                                                input_shape=(image_size, image_size, 3))
    for layer in base.layers[:274]:  # the layers before mixed_6a frozen, as `fid train --freeze half`
        layer.trainable = False
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    out = keras.layers.Dense(classes, activation="softmax", dtype="float32")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(2e-4), loss="sparse_categorical_crossentropy", jit_compile=jit)
    return model


def timed_fit(model, data, warmup: int) -> float:
    """Images/s over the steps after ``warmup`` (compilation and queue filling excluded)."""
    import keras

    class Clock(keras.callbacks.Callback):
        times: list = []

        def on_train_batch_end(self, batch, logs=None):
            # logs hold device arrays: wait for the step to finish before reading the clock
            if logs:
                np.asarray(next(iter(logs.values())))
            self.times.append(time.perf_counter())

    clock = Clock()
    clock.times = []
    model.fit(data, epochs=1, verbose=0, callbacks=[clock])
    steps = len(clock.times) - 1 - warmup
    if steps < 1:
        raise SystemExit(f"need more than {warmup + 1} steps, got {len(clock.times)}")
    return steps * data.batch_size / (clock.times[-1] - clock.times[warmup])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run (75 px, batch 4, few steps)")
    ap.add_argument("--image-size", type=int, default=299)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    ap.add_argument("--jpeg-side", type=int, default=512)
    ap.add_argument("--unique-images", type=int, default=1024, help="distinct JPEGs written (then reused)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", action="store_true", help="decode in threads instead of processes")
    ap.add_argument("--policy", default="mixed_bfloat16")
    ap.add_argument("--no-jit", dest="jit", action="store_false", help="run the train step without XLA")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if a.tiny:  # CPUs emulate bfloat16 slowly: float32 there
        a.image_size, a.batch_size, a.steps, a.warmup = 75, 4, 2, 1
        a.jpeg_side, a.unique_images, a.workers, a.policy = 128, 8, min(2, a.workers), "float32"
        a.jit = False  # XLA's whole-graph CPU compile of IRv2 would dominate a tiny run

    # write the JPEGs first: forking after JAX has started its threads may deadlock
    tmpdir = tempfile.TemporaryDirectory(prefix="fid-bench-")
    tmp = tmpdir.name
    paths = [str(Path(tmp) / f"{i:05d}.jpg") for i in range(a.unique_images)]
    t0 = time.perf_counter()
    with Pool(max(1, min(len(paths), a.workers))) as pool:
        pool.map(make_jpeg, [(p, a.jpeg_side, i) for i, p in enumerate(paths)])
    gen_s = time.perf_counter() - t0

    import keras

    from training.data import ImageSequence, RepeatBatch

    keras.mixed_precision.set_dtype_policy(a.policy)
    input_size = int(round(a.image_size * 1.14))
    classes = 50
    n_steps = a.warmup + 1 + a.steps
    model = build(a.image_size, input_size, classes, a.jit)
    rng = np.random.default_rng(0)

    x = rng.integers(0, 256, (a.batch_size, input_size, input_size, 3), dtype=np.uint8)
    y = rng.integers(0, classes, a.batch_size).astype(np.int32)
    synthetic = RepeatBatch(x, y, n_steps)
    synthetic.batch_size = a.batch_size
    ips_a = timed_fit(model, synthetic, a.warmup)

    files = [paths[i % len(paths)] for i in range(n_steps * a.batch_size)]
    labels = rng.integers(0, classes, len(files))
    real = ImageSequence(files, labels, size=input_size, batch_size=a.batch_size, shuffle=True,
                         workers=a.workers, use_multiprocessing=not a.threads,
                         max_queue_size=max(10, 2 * a.workers))
    try:
        ips_b = timed_fit(model, real, a.warmup)
    finally:
        tmpdir.cleanup()

    import jax

    res = {"backend": keras.backend.backend(), "device": str(jax.devices()[0]), "policy": a.policy, "jit": a.jit,
           "image_size": a.image_size, "input_size": input_size, "batch_size": a.batch_size,
           "timed_steps": a.steps, "workers": a.workers, "multiprocessing": not a.threads,
           "jpeg_side": a.jpeg_side, "jpeg_generation_s": round(gen_s, 2),
           "synthetic_img_s": round(ips_a, 2), "pipeline_img_s": round(ips_b, 2),
           "ratio_b_over_a": round(ips_b / ips_a, 3)}
    print(f"backend {res['backend']} on {res['device']}, {a.policy}, IRv2 {a.image_size}px, batch {a.batch_size}")
    print(f"(a) synthetic batches:   {ips_a:9.1f} img/s")
    print(f"(b) JPEG input pipeline: {ips_b:9.1f} img/s  ({a.workers} {'threads' if a.threads else 'processes'})")
    print(f"b/a = {ips_b / ips_a:.3f}  (target >= 0.90)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()

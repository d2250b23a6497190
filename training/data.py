"""The input pipeline: a `keras.utils.PyDataset` that decodes JPEGs with Pillow's draft mode.

Pure keras + Pillow + numpy (no catalog, no TensorFlow), so bench/train_gpu.py can use it on a
machine with only JAX. Images come out as uint8 RGB at ``size`` x ``size`` (squashed, crop applied);
the model rescales and augments them on the accelerator (see training/models.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

import keras


def default_workers(use_multiprocessing: bool = False) -> int:
    """Decoding workers when none are asked for: 1.5 x the cores for threads (Pillow decodes and
    resizes without the GIL, and the extra threads cover the parts that hold it), all cores but
    two for processes. Measured with bench/train_gpu.py on an H100 with 16 cores (IRv2 299 px,
    batch 128, JAX, mixed bfloat16): 14 threads 0.71 of the synthetic-input speed, 16 threads 0.87,
    24 threads 0.95; 14 processes 0.48 (each 44 MB batch is pickled back to the trainer)."""
    cores = os.cpu_count() or 1
    return max(1, cores - 2) if use_multiprocessing else max(4, cores * 3 // 2)


def load_image(path: str | Path, size: int, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Decode one image to a ``(size, size, 3)`` uint8 array.

    ``crop`` is (x0, y0, x1, y1) in the file's full-resolution pixels. JPEG draft mode lets the
    decoder skip detail it would throw away (DCT scaling by 1/2, 1/4, 1/8) while keeping the
    (cropped) region at least ``size`` pixels on each side.
    """
    with Image.open(path) as im:
        w, h = im.size
        cw, ch = (crop[2] - crop[0], crop[3] - crop[1]) if crop else (w, h)
        want = (max(1, math.ceil(size * w / max(1, cw))), max(1, math.ceil(size * h / max(1, ch))))
        if im.format == "JPEG":
            im.draft("RGB", want)
        im = im.convert("RGB")
        if crop:
            sx, sy = im.size[0] / w, im.size[1] / h
            im = im.crop((int(crop[0] * sx), int(crop[1] * sy),
                          max(int(crop[0] * sx) + 1, int(round(crop[2] * sx))),
                          max(int(crop[1] * sy) + 1, int(round(crop[3] * sy)))))
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
        return np.asarray(im, dtype=np.uint8)


class ImageSequence(keras.utils.PyDataset):
    """Batches of (uint8 images, int32 labels) read from files.

    ``paths``: image files; ``labels``: class indices (or None for prediction); ``crops``: a crop
    box per file or None. Shuffles every epoch when ``shuffle`` (seeded, reproducible). ``workers``
    and ``use_multiprocessing`` are passed to Keras: several processes decode in parallel while
    the accelerator trains.
    """

    def __init__(self, paths, labels=None, crops=None, *, size: int, batch_size: int = 32,
                 shuffle: bool = False, seed: int = 0, workers: int = 1,
                 use_multiprocessing: bool = False, max_queue_size: int = 10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        self.crops = list(crops) if crops is not None else [None] * len(self.paths)
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.order = np.arange(len(self.paths))
        self._reorder()

    def _reorder(self):
        if self.shuffle:
            self.order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.paths))

    def __len__(self):
        return math.ceil(len(self.paths) / self.batch_size)

    def __getitem__(self, idx):
        ids = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        x = np.stack([load_image(self.paths[i], self.size, self.crops[i]) for i in ids])
        if self.labels is None:
            return (x,)
        return x, self.labels[ids]

    def on_epoch_end(self):
        self.epoch += 1
        self._reorder()


class RepeatBatch(keras.utils.PyDataset):
    """The same in-memory batch ``steps`` times (synthetic input for throughput baselines)."""

    def __init__(self, x, y, steps: int):
        super().__init__()
        self.x, self.y, self.steps = x, y, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, idx):
        return self.x, self.y

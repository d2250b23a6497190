"""`fid explain`: Grad-CAM over an image.

The gradient of the class score (the pre-softmax logit of the "predictions" layer) with respect to
the base's last feature map is taken by :func:`value_and_grad`, the only backend-specific code:
TensorFlow (GradientTape), JAX (jax.value_and_grad) and PyTorch (autograd). Guided Grad-CAM is
not implemented (it needs ReLU gradient overrides, which Keras 3 does not expose portably).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TrainingError


def value_and_grad(fn, x):
    """``fn(x)`` (a scalar) and its gradient with respect to ``x``, on the active Keras backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return np.asarray(y), np.asarray(tape.gradient(y, x))
    if backend == "jax":
        import jax

        y, g = jax.value_and_grad(fn)(keras.ops.convert_to_tensor(x))
        return np.asarray(y), np.asarray(g)
    if backend == "torch":
        import torch

        x = torch.as_tensor(np.asarray(x)).requires_grad_(True)
        y = fn(x)
        (g,) = torch.autograd.grad(y, x)
        return y.detach().cpu().numpy(), g.detach().cpu().numpy()
    raise TrainingError(f"Grad-CAM is not available on the {backend!r} backend; use tensorflow, jax or torch")


def gradcam(model, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM heat map in [0, 1] at the feature map's resolution, the class explained, and the
    class probabilities. ``image``: one (H, W, 3) uint8 array at the model's input size."""
    import keras

    from .models import feature_map_model

    x = np.asarray(image, dtype="uint8")[None]
    fmap = np.asarray(feature_map_model(model).predict(x, verbose=0))
    probs = np.asarray(model.predict(x, verbose=0))[0]
    c = int(probs.argmax()) if class_index is None else int(class_index)
    pooled, dense = model.get_layer("pooled"), model.get_layer("predictions")
    kernel = keras.ops.convert_to_tensor(dense.kernel)
    bias = keras.ops.convert_to_tensor(dense.bias)

    def score(a):  # class logit from the feature map: the head without softmax (dropout is off)
        logits = keras.ops.matmul(pooled(a), kernel) + bias
        return keras.ops.sum(logits[:, c])

    _, grads = value_and_grad(score, fmap)
    weights = grads.mean(axis=(1, 2))[0]             # alpha_k: gradients averaged over space
    cam = np.maximum((fmap[0] * weights).sum(axis=-1), 0)
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cam, c, probs


def explain(model_dir: str | Path, image: str | Path, out: str | Path, clade: str | None = None) -> dict:
    """Write the image, the Grad-CAM heat map and their overlay side by side to ``out`` (PNG)."""
    from PIL import Image

    from .bundle import load_bundle
    from .data import load_image
    from .plots import _plt

    if not Path(image).is_file():
        raise TrainingError(f"image file not found: {image}")
    bundle = load_bundle(model_dir)
    index = bundle.index()
    if clade is not None and clade not in index:
        raise TrainingError(f"unknown clade {clade!r} for this model; choose from: {', '.join(bundle.classes)}")
    x = load_image(image, bundle.input_size)
    cam, c, probs = gradcam(bundle.model, x, index.get(clade) if clade else None)
    heat = np.asarray(Image.fromarray(np.uint8(cam * 255)).resize(x.shape[1::-1], Image.BILINEAR)) / 255.0
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    axes[0].imshow(x)
    axes[0].set_title("image")
    axes[1].imshow(heat, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM")
    axes[2].imshow(x)
    axes[2].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title(f"{bundle.classes[c]} (p = {probs[c]:.2f})")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    import keras

    return {"out": str(out), "clade": bundle.classes[c], "p": float(probs[c]), "backend": keras.backend.backend(),
            "cam_shape": list(cam.shape), "cam": cam}

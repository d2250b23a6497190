"""`fid explain`: Grad-CAM over an image, and guided Grad-CAM where the backend allows.

Grad-CAM (Selvaraju et al. 2017): the gradient of the class score (the pre-softmax logit of the
"predictions" layer) with respect to the base's last feature map, averaged over space, weights the
feature map's channels. Guided backpropagation (Springenberg et al. 2015): the gradient of the same
score with respect to the input pixels, where every ReLU's backward pass lets through only positive
gradients at positions whose forward input was positive. Guided Grad-CAM is their product: the
guided-backprop saliency times the Grad-CAM map upsampled (bilinear) to the input's size.

The model code is `keras.*` only: :func:`guided_model` clones the classifier with
`keras.models.clone_model`, sharing every layer (and so every weight) except the ReLUs
(`Activation("relu")`, `ReLU` layers, layers with a fused relu) and the softmax head (which
becomes a logit). Backend-specific code is two small functions: :func:`value_and_grad`
(TensorFlow GradientTape, jax.value_and_grad, PyTorch autograd) and :func:`guided_relu_op`
(`tf.custom_gradient`, `jax.custom_vjp`). Guided Grad-CAM is not offered on the PyTorch backend
(Grad-CAM only there).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import TrainingError

GUIDED_BACKENDS = ("tensorflow", "jax")


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


def guided_unsupported(backend: str) -> str:
    return (f"guided Grad-CAM is not supported on the {backend!r} backend (Grad-CAM only); "
            f"use KERAS_BACKEND={' or '.join(GUIDED_BACKENDS)}, or --no-guided")


@lru_cache(maxsize=None)
def guided_relu_op(backend: str | None = None):
    """The guided ReLU on the active backend: forward ``max(x, 0)``; backward the upstream gradient
    where it is positive and the forward input was positive, zero elsewhere."""
    import keras

    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def guided_relu(x):
            def grad(dy):
                return tf.where((dy > 0) & (x > 0), dy, tf.zeros_like(dy))
            return tf.nn.relu(x), grad
        return guided_relu
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        @jax.custom_vjp
        def guided_relu(x):
            return jnp.maximum(x, 0)

        guided_relu.defvjp(lambda x: (jnp.maximum(x, 0), x),
                           lambda x, dy: (jnp.where((dy > 0) & (x > 0), dy, jnp.zeros_like(dy)),))
        return guided_relu
    raise TrainingError(guided_unsupported(backend))


def guided_model(model):
    """``(float image -> class logits)`` copy of the classifier with guided ReLUs, and the number of
    ReLUs replaced. Other layers are the original objects (shared weights); nested models are cloned."""
    import keras

    op = guided_relu_op(keras.backend.backend())
    relu = keras.activations.relu
    head = model.get_layer("predictions")
    copies, replaced = [], [0]

    def capped(max_value):
        return lambda x: keras.ops.minimum(op(x), max_value)

    def swap(layer):
        if isinstance(layer, keras.layers.Activation) and layer.activation is relu:
            replaced[0] += 1
            return keras.layers.Activation(op, name=layer.name, dtype=layer.dtype_policy)
        if isinstance(layer, keras.layers.ReLU) and not layer.negative_slope and not layer.threshold:
            replaced[0] += 1
            fn = op if layer.max_value is None else capped(float(layer.max_value))
            return keras.layers.Activation(fn, name=layer.name, dtype=layer.dtype_policy)
        fused = getattr(layer, "activation", None) is relu
        if fused or layer is head:  # a copy with the same weights (set below) and another activation
            new = layer.__class__.from_config(layer.get_config())
            new.activation = op if fused else keras.activations.linear
            replaced[0] += fused
            copies.append((new, layer))
            return new
        return layer

    inp = keras.Input(tuple(model.inputs[0].shape[1:]), dtype="float32", name="image_float")
    clone = keras.models.clone_model(model, input_tensors=inp if not isinstance(model.input, list) else [inp],
                                     clone_function=swap, recursive=True)
    for new, old in copies:
        new.set_weights(old.get_weights())
    return clone, replaced[0]


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


def upsample_cam(model, cam: np.ndarray) -> np.ndarray:
    """The Grad-CAM map (bilinear) at the model's input size, placed where the base sees the input:
    with random-crop training the model centre-crops at inference, and the map covers that centre."""
    from PIL import Image

    h, w = (int(d) for d in model.inputs[0].shape[1:3])
    base_shape = model.get_layer("base").inputs[0].shape[1:3]
    ch, cw = (int(base_shape[0] or h), int(base_shape[1] or w))
    if ch > h or cw > w:
        ch, cw = h, w
    small = np.asarray(Image.fromarray(np.asarray(cam, np.float32)).resize((cw, ch), Image.BILINEAR))
    out = np.zeros((h, w), np.float32)
    top, left = (h - ch) // 2, (w - cw) // 2
    out[top:top + ch, left:left + cw] = np.clip(small, 0, 1)
    return out


def guided_backprop(gmodel, image: np.ndarray, class_index: int) -> np.ndarray:
    """Guided-backprop saliency, (H, W, 3): d(class logit)/d(input pixels) through guided ReLUs.
    ``gmodel``: from :func:`guided_model`."""
    import keras

    x = np.asarray(image, dtype="float32")[None]

    def score(t):
        return keras.ops.sum(gmodel(t, training=False)[:, int(class_index)])

    _, g = value_and_grad(score, x)
    return np.asarray(g, dtype=np.float32)[0]


def guided_gradcam(model, image: np.ndarray, class_index: int | None = None) -> dict:
    """Grad-CAM and guided Grad-CAM of one (H, W, 3) uint8 image at the model's input size:
    ``{"cam", "heat" (cam at H x W), "class", "probs", "saliency" (guided backprop, H x W x 3),
    "guided_gradcam" (saliency x heat, H x W x 3), "relus" (ReLUs made guided)}``."""
    cam, c, probs = gradcam(model, image, class_index)
    heat = upsample_cam(model, cam)
    gmodel, relus = guided_model(model)
    saliency = guided_backprop(gmodel, image, c)
    return {"cam": cam, "heat": heat, "class": c, "probs": probs, "saliency": saliency,
            "guided_gradcam": saliency * heat[..., None], "relus": relus}


def to_rgb(g: np.ndarray) -> np.ndarray:
    """A gradient image for display (as in the guided-backprop papers): standardised, scaled to
    0.1 standard deviations around mid-grey, clipped to [0, 1]."""
    g = np.asarray(g, dtype=np.float64)
    g = (g - g.mean()) / (g.std() + 1e-12)
    return np.clip(g * 0.1 + 0.5, 0, 1)


def guided_path(out: str | Path) -> Path:
    """Where the guided Grad-CAM figure goes: ``<out>-guided.png`` next to ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}-guided{out.suffix or '.png'}")


def explain(model_dir: str | Path, image: str | Path, out: str | Path, clade: str | None = None,
            guided: bool | None = None) -> dict:
    """Write the image, the Grad-CAM heat map and their overlay side by side to ``out`` (PNG), and,
    with ``guided`` (None: where the backend allows), the image, its guided backprop and guided
    Grad-CAM to :func:`guided_path` (``guided_out`` in the result; ``note`` says when it was skipped)."""
    import keras

    from .bundle import load_bundle
    from .data import load_image
    from .plots import _plt

    backend = keras.backend.backend()
    supported = backend in GUIDED_BACKENDS
    if guided and not supported:
        raise TrainingError(guided_unsupported(backend))
    if not Path(image).is_file():
        raise TrainingError(f"image file not found: {image}")
    bundle = load_bundle(model_dir)
    index = bundle.index()
    if clade is not None and clade not in index:
        raise TrainingError(f"unknown clade {clade!r} for this model; choose from: {', '.join(bundle.classes)}")
    x = load_image(image, bundle.input_size)
    c = index.get(clade) if clade else None
    do_guided = supported if guided is None else bool(guided)
    if do_guided:
        res = guided_gradcam(bundle.model, x, c)
        cam, c, probs, heat = res["cam"], res["class"], res["probs"], res["heat"]
    else:
        cam, c, probs = gradcam(bundle.model, x, c)
        heat = upsample_cam(bundle.model, cam)
    title = f"{bundle.classes[c]} (p = {probs[c]:.2f})"
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    axes[0].imshow(x)
    axes[0].set_title("image")
    axes[1].imshow(heat, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM")
    axes[2].imshow(x)
    axes[2].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title(title)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    result = {"out": str(out), "clade": bundle.classes[c], "p": float(probs[c]), "backend": backend,
              "cam_shape": list(cam.shape), "cam": cam, "guided_out": None, "note": None}
    if not do_guided:
        if guided is None:
            result["note"] = guided_unsupported(backend)
        return result
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    panels = [(x, "image"), (to_rgb(res["saliency"]), "guided backprop"),
              (to_rgb(res["guided_gradcam"]), f"guided Grad-CAM: {title}")]
    for ax, (img, name) in zip(axes, panels):
        ax.imshow(img)
        ax.set_title(name)
        ax.axis("off")
    fig.tight_layout()
    gout = guided_path(out)
    fig.savefig(gout, dpi=100)
    plt.close(fig)
    result.update(guided_out=str(gout), guided_relus=res["relus"], saliency=res["saliency"],
                  guided_gradcam=res["guided_gradcam"])
    if res["relus"] == 0:
        result["note"] = "the model has no ReLUs: guided backprop is the plain input gradient"
    return result

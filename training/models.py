"""Model construction: a `keras.applications` base (or the tiny `small_cnn`) behind on-accelerator
augmentation and preprocessing layers, with a pooled-features + softmax head.

Layout of every model (names are relied on by explain/embed/suspects)::

    image (uint8 RGB, input_size x input_size: image_size, or x1.14 with random crops)
      -> augmentation layers (active only in training; with crop, a CenterCrop at inference)
      -> "preprocess" (the architecture's own input scaling)
      -> "base" (nested model, include_top=False: its output is the last feature map)
      -> "pooled" (GlobalAveragePooling2D) -> "dropout" -> "predictions" (softmax, float32)

``--freeze half``: for inception_resnet_v2 every base layer before ``mixed_6a`` (base layer index
274) is frozen, as in the authors' TF script (layers from Mixed_6a on trainable); for the other
architectures the first half of the base's layers. ``--freeze N`` freezes the first N base layers,
``none`` freezes nothing. Frozen BatchNormalization layers run in inference mode (Keras 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from .errors import TrainingError


@dataclass(frozen=True)
class Arch:
    app: str | None         # keras.applications constructor, None for small_cnn
    default_size: int
    preprocessing: str      # "tf": x/127.5 - 1; "unit": x/255; "builtin": the base rescales 0..255 itself
    half_layer: str | None  # freeze everything before this base layer for --freeze half


ARCHS: dict[str, Arch] = {
    "inception_resnet_v2": Arch("InceptionResNetV2", 299, "tf", "mixed_6a"),
    "inception_v3": Arch("InceptionV3", 299, "tf", None),
    "xception": Arch("Xception", 299, "tf", None),
    "efficientnetv2_s": Arch("EfficientNetV2S", 384, "builtin", None),
    "convnext_tiny": Arch("ConvNeXtTiny", 224, "builtin", None),
    "resnet50v2": Arch("ResNet50V2", 224, "tf", None),
    "small_cnn": Arch(None, 64, "unit", None),
}
AUGMENTS = ("crop", "rotate", "flip", "color")
OPTIMIZERS = ("adam", "sgd")
#: default learning rates: the authors' TF script (Adam 2e-4) and Keras script (SGD 1e-4, momentum 0.9)
DEFAULT_LR = {"adam": 2e-4, "sgd": 1e-4}
CROP_MARGIN = 1.14  # images are loaded this much larger than the crop (299 -> 341)


def check_arch(arch: str) -> Arch:
    if arch not in ARCHS:
        raise TrainingError(f"unknown architecture {arch!r}; choose from: {', '.join(ARCHS)}")
    return ARCHS[arch]


def parse_augment(spec: str | None) -> tuple[str, ...]:
    if not spec or spec.strip().lower() == "none":
        return ()
    parts = tuple(p.strip().lower() for p in spec.split(",") if p.strip())
    bad = [p for p in parts if p not in AUGMENTS]
    if bad:
        raise TrainingError(f"unknown augmentation {bad[0]!r}; choose from: {', '.join(AUGMENTS)} (or none)")
    return parts


def input_size(image_size: int, augment: tuple[str, ...]) -> int:
    """The size images are decoded at: larger than the model's when random crops are taken."""
    return int(round(image_size * CROP_MARGIN)) if "crop" in augment else image_size


def small_cnn(image_size: int, seed: int = 0) -> keras.Model:
    """A tiny CNN for CPU tests and demos (4 conv blocks, ~100k parameters)."""
    init = keras.initializers.HeNormal(seed=seed)
    inp = keras.Input((image_size, image_size, 3))
    x = inp
    for i, filters in enumerate((16, 32, 64, 128)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init,
                                name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=0.8, name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(inp, x, name="small_cnn")


def build_base(arch: str, image_size: int, weights: str | None = None, seed: int = 0) -> keras.Model:
    """The base network (no top). ``weights``: "imagenet", None, or a local weights file."""
    a = check_arch(arch)
    if a.app is None:
        if weights == "imagenet":
            raise TrainingError("small_cnn has no ImageNet weights; use --weights none or a weights file")
        base = small_cnn(image_size, seed)
        if weights:
            base.load_weights(weights)
        return base
    kwargs = {}
    if arch in ("efficientnetv2_s", "convnext_tiny"):
        kwargs["include_preprocessing"] = True
    try:
        return getattr(keras.applications, a.app)(include_top=False, weights=weights,
                                                  input_shape=(image_size, image_size, 3), **kwargs)
    except ValueError as exc:
        raise TrainingError(f"cannot build {arch} at {image_size} px with weights {weights!r}: "
                            f"{str(exc).splitlines()[0]}") from None


def resolve_freeze(spec: str | int | None, arch: str, weights) -> str:
    """``auto`` (the default) follows the paper's Table 2: freeze the shallow half when pretrained
    weights are loaded, train every layer from scratch (``--weights none``, ``small_cnn``)."""
    spec = "none" if spec is None else str(spec).lower()
    if spec != "auto":
        return spec
    return "half" if weights is not None and arch != "small_cnn" else "none"


def freeze(base: keras.Model, arch: str, spec: str | int | None) -> int:
    """Freeze the shallow part of ``base``; returns the number of base layers frozen."""
    spec = "none" if spec is None else str(spec).lower()
    n_layers = len(base.layers)
    if spec == "none":
        n = 0
    elif spec == "half":
        half = ARCHS[arch].half_layer
        names = [layer.name for layer in base.layers]
        n = names.index(half) if half in names else n_layers // 2
    elif spec.isdigit():
        n = int(spec)
        if n > n_layers:
            raise TrainingError(f"--freeze {n} is more than the {n_layers} layers of {arch}; "
                                f"choose from: half, none, 0..{n_layers}")
    else:
        raise TrainingError(f"unknown --freeze {spec!r}; choose from: half, none, or a layer count")
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= n
    return n


@keras.saving.register_keras_serializable(package="fid")
class RandomCrop(keras.layers.RandomCrop):
    """``keras.layers.RandomCrop`` that XLA can compile, with a crop position per image.

    Keras 3.15's RandomCrop slices with Python slices at traced offsets, which JAX refuses under
    ``jit``, so it sets ``supports_jit = False``; one such layer makes ``compile`` fall back to
    ``jit_compile=False`` for the whole model, and on JAX that runs IRv2 op by op (measured: 18
    img/s on an H100). It also draws one offset for the whole batch. This one draws an offset per
    image, as the paper's random crops did, and cuts each with a dynamic slice mapped over the
    batch (``keras.ops.vectorized_map``: a vmap on JAX), which every backend compiles. At
    inference it behaves as Keras's (the model's CenterCrop then takes the centre).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = True

    def _per_image(self, shape) -> bool:
        return (len(shape) == 4 and self.data_format == "channels_last"
                and all(isinstance(d, int) for d in shape[1:3])
                and shape[1] >= self.height and shape[2] >= self.width)

    def get_random_transformation(self, data, training=True, seed=None):
        images = data["images"] if isinstance(data, dict) else data
        shape = tuple(images.shape)
        if not training or not self._per_image(shape):
            return super().get_random_transformation(data, training, seed)
        seed = seed if seed is not None else self._get_seed_generator(self.backend._backend)
        batch = self.backend.shape(images)[0]
        rnd = self.backend.random

        def offsets(room):
            return self.backend.cast(rnd.uniform((batch,), 0, float(room + 1), seed=seed), "int32")

        return {"per_image": (offsets(shape[1] - self.height), offsets(shape[2] - self.width))}

    def transform_images(self, images, transformation, training=True):
        if not (training and isinstance(transformation, dict)):
            return super().transform_images(images, transformation, training)
        images = self.backend.cast(images, self.compute_dtype)
        h_start, w_start = transformation["per_image"]
        height, width, channels = self.height, self.width, images.shape[3]
        ops = self.backend

        def crop(args):
            img, h, w = args
            return ops.core.slice(img, [h, w, ops.numpy.zeros((), "int32")], [height, width, channels])

        return ops.core.vectorized_map(crop, (images, h_start, w_start))


@keras.saving.register_keras_serializable(package="fid")
class RandomRotation(keras.layers.RandomRotation):
    """``keras.layers.RandomRotation`` allowed under XLA on JAX, where its affine transform
    (``jax.scipy.ndimage.map_coordinates``) compiles; Keras marks it ``supports_jit = False`` for
    TensorFlow, whose projective-transform op XLA lacks, so there it stays off (TensorFlow then
    runs a graph without XLA, not op by op)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = keras.backend.backend() == "jax"


def augmentation_layers(augment: tuple[str, ...], image_size: int, seed: int = 0) -> list:
    layers = []
    if "crop" in augment:
        layers.append(RandomCrop(image_size, image_size, seed=seed, name="aug_crop"))
        # Keras 3 RandomCrop passes inputs through unchanged at inference: crop the centre there
        # (a no-op in training, where the random crop already has the target size)
        layers.append(keras.layers.CenterCrop(image_size, image_size, name="center_crop"))
    if "flip" in augment:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="aug_flip"))
    if "rotate" in augment:
        layers.append(RandomRotation(0.1, fill_mode="reflect", seed=seed, name="aug_rotate"))
    if "color" in augment:
        layers.append(keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed, name="aug_brightness"))
        layers.append(keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed, name="aug_contrast"))
    return layers


def preprocess_layer(kind: str):
    if kind == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    if kind == "unit":
        return keras.layers.Rescaling(1 / 255.0, name="preprocess")
    return keras.layers.Identity(name="preprocess")


def build_model(arch: str, num_classes: int, image_size: int | None = None, weights: str | None = None,
                freeze_spec: str | int | None = "half", augment: tuple[str, ...] = (), dropout: float = 0.2,
                seed: int = 0) -> tuple[keras.Model, dict]:
    """The full classifier and a description (``input_size``, ``frozen_layers``, ...)."""
    a = check_arch(arch)
    image_size = int(image_size or a.default_size)
    size_in = input_size(image_size, augment)
    inp = keras.Input((size_in, size_in, 3), dtype="uint8", name="image")
    x = inp
    for layer in augmentation_layers(augment, image_size, seed):
        x = layer(x)
    x = preprocess_layer(a.preprocessing)(x)
    base = build_base(arch, image_size, weights, seed)
    n_frozen = freeze(base, arch, freeze_spec)
    base.name = "base"
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                             name="predictions")(x)
    model = keras.Model(inp, out, name=f"fid_{arch}")
    info = {"arch": arch, "image_size": image_size, "input_size": size_in, "augment": list(augment),
            "preprocessing": a.preprocessing, "frozen_layers": n_frozen, "base_layers": len(base.layers),
            "params": int(model.count_params())}
    return model, info


def make_optimizer(name: str, lr: float | None, steps_per_epoch: int, decay_every: float = 0.5,
                   decay_rate: float = 0.96):
    """Adam (default, 2e-4) or SGD with momentum 0.9 (1e-4), both on a staircase exponential decay
    of ``decay_rate`` every ``decay_every`` epochs (the paper: 0.96 every half epoch)."""
    if name not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {name!r}; choose from: {', '.join(OPTIMIZERS)}")
    lr = float(lr if lr is not None else DEFAULT_LR[name])
    steps = max(1, int(round(steps_per_epoch * decay_every)))
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, steps, decay_rate, staircase=True)
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.SGD(schedule, momentum=0.9)


def feature_model(model: keras.Model) -> keras.Model:
    """image -> pooled features (the input of the classifier's dense layer)."""
    return keras.Model(model.inputs, model.get_layer("pooled").output)


def feature_map_model(model: keras.Model) -> keras.Model:
    """image -> the base's last feature map (what Grad-CAM weights)."""
    return keras.Model(model.inputs, model.get_layer("pooled").input)

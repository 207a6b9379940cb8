"""Keras Applications: the lecture's table of pretrained ImageNet models, as data, and their builder.

The documented numbers are the table on https://keras.io/api/applications/ that the lecture shows.
The weights files are the ones Keras 3 itself downloads (`keras/src/applications/*.py`): the
file name it caches under `$KERAS_HOME/models`, the address and, where Keras checks one, the MD5.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from ..errors import LabError

DOCS_URL = "https://keras.io/api/applications/"
_GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Documented:
    """One row of the Keras Applications table. Times are per inference step of 32 images
    (CPU: a 92-core AMD EPYC; GPU: a Tesla A100); depth counts the layers that hold weights."""

    size_mb: int
    top1: float
    top5: float
    params_m: float
    depth: int
    cpu_ms: float
    gpu_ms: float


@dataclass(frozen=True)
class WeightsFile:
    file_name: str            # as Keras caches it, under $KERAS_HOME/models
    url: str
    md5: str | None           # None where Keras itself checks no hash


@dataclass(frozen=True)
class Application:
    name: str                 # Keras's class name, e.g. "ResNet50"
    module: str               # keras.applications.<module> holds its preprocess_input
    year: int
    paper: str
    input_size: int           # the side its ImageNet weights were trained at
    min_input_size: int
    preprocess: str           # what preprocess_input does: "caffe", "tf", "torch" or "none" (built in)
    documented: Documented
    top: WeightsFile          # the ImageNet classifier
    no_top: WeightsFile       # the convolutional base alone, for transfer learning

    @property
    def key(self) -> str:
        return self.name.lower()

    def model(self, x, *, include_top: bool = True, weights: str | None = None, input_size: int | None = None,
              pooling: str | None = None) -> keras.Model:
        """Keras's network on the preprocessed tensor `x` (the returned model starts at x's source input).

        weights: None (random initial weights) or the path of a weights file in Keras's format.
        """
        size = input_size or self.input_size
        if size < self.min_input_size:
            raise LabError("too_small_for", name=self.name, size=str(size), smallest=str(self.min_input_size))
        return getattr(keras.applications, self.name)(
            include_top=include_top, weights=weights, input_tensor=x, input_shape=(size, size, 3), pooling=pooling)


def build_application(x, config, load_weights: bool):
    """keras-<name>: the documented ImageNet classifier, top included, on preprocessed pixels.

    The `weights` knob picks random initial weights (as the documentation counts parameters) or
    the ImageNet weights, which only fit the size they were trained at.
    """
    app = get_application(config.arch.removeprefix("keras-").removesuffix("-top"))
    weights = None
    if config.knobs["weights"] == "imagenet":
        if config.input_size != app.input_size:
            raise LabError("imagenet_size", name=app.name, fits=str(app.input_size), size=str(config.input_size))
        if load_weights:
            from ..pretrained import weights_path

            weights = str(weights_path(app, top=True))
    return app.model(x, weights=weights, input_size=config.input_size).outputs[0]   # (1000,)


def _files(folder: str, top: str, top_md5: str | None, no_top: str, no_top_md5: str | None,
           base: str = _GCS, top_url: str | None = None, no_top_url: str | None = None):
    return (WeightsFile(top, base + folder + (top_url or top), top_md5),
            WeightsFile(no_top, base + folder + (no_top_url or no_top), no_top_md5))


def _resnet(name: str, top_md5: str, no_top_md5: str):
    stem = name.lower()
    return _files("resnet/", f"{stem}_weights_tf_dim_ordering_tf_kernels.h5", top_md5,
                  f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5", no_top_md5)


def _densenet(name: str, top_md5: str, no_top_md5: str):
    stem = name.lower()
    return _files("densenet/", f"{stem}_weights_tf_dim_ordering_tf_kernels.h5", top_md5,
                  f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5", no_top_md5)


_RESNET = "He, Zhang, Ren and Sun, Deep residual learning for image recognition, 2015"
_RESNET_V2 = "He, Zhang, Ren and Sun, Identity mappings in deep residual networks, 2016"
_DENSENET = "Huang, Liu, van der Maaten and Weinberger, Densely connected convolutional networks, 2017"
_NASNET = "Zoph, Vasudevan, Shlens and Le, Learning transferable architectures for scalable image recognition, 2018"
_VGG = "Simonyan and Zisserman, Very deep convolutional networks for large-scale image recognition, 2014"

# name, module, year, paper, input size, smallest input, preprocessing, documented row, (top, no top) files
_ROWS = [
    ("Xception", "xception", 2017, "Chollet, Xception: deep learning with depthwise separable convolutions, 2017",
     299, 71, "tf", Documented(88, 79.0, 94.5, 22.9, 81, 109.4, 8.1),
     _files("xception/", "xception_weights_tf_dim_ordering_tf_kernels.h5", "0a58e3b7378bc2990ea3b43d5981f1f6",
            "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", "b0042744bf5b25fce3cb969f33bebb97")),
    ("VGG16", "vgg16", 2014, _VGG, 224, 32, "caffe", Documented(528, 71.3, 90.1, 138.4, 16, 69.5, 4.2),
     _files("vgg16/", "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b",
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc")),
    ("VGG19", "vgg19", 2014, _VGG, 224, 32, "caffe", Documented(549, 71.3, 90.0, 143.7, 19, 84.8, 4.4),
     _files("vgg19/", "vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318",
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6")),
    ("ResNet50", "resnet", 2015, _RESNET, 224, 32, "caffe", Documented(98, 74.9, 92.1, 25.6, 107, 58.2, 4.6),
     _resnet("ResNet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626")),
    ("ResNet50V2", "resnet_v2", 2016, _RESNET_V2, 224, 32, "tf", Documented(98, 76.0, 93.0, 25.6, 103, 45.6, 4.4),
     _resnet("ResNet50V2", "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917")),
    ("ResNet101", "resnet", 2015, _RESNET, 224, 32, "caffe", Documented(171, 76.4, 92.8, 44.7, 209, 89.6, 5.2),
     _resnet("ResNet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21")),
    ("ResNet101V2", "resnet_v2", 2016, _RESNET_V2, 224, 32, "tf", Documented(171, 77.2, 93.8, 44.7, 205, 72.7, 5.4),
     _resnet("ResNet101V2", "6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5")),
    ("ResNet152", "resnet", 2015, _RESNET, 224, 32, "caffe", Documented(232, 76.6, 93.1, 60.4, 311, 127.4, 6.5),
     _resnet("ResNet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c")),
    ("ResNet152V2", "resnet_v2", 2016, _RESNET_V2, 224, 32, "tf", Documented(232, 78.0, 94.2, 60.4, 307, 107.5, 6.6),
     _resnet("ResNet152V2", "a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33")),
    ("InceptionV3", "inception_v3", 2015,
     "Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, Rethinking the Inception architecture for computer vision, 2015",
     299, 75, "tf", Documented(92, 77.9, 93.7, 23.9, 189, 42.2, 6.9),
     _files("inception_v3/", "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "9a0d58056eeedaa3f26cb7ebd46da564",
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63")),
    ("InceptionResNetV2", "inception_resnet_v2", 2016,
     "Szegedy, Ioffe, Vanhoucke and Alemi, Inception-v4, Inception-ResNet and the impact of residual connections, 2016",
     299, 75, "tf", Documented(215, 80.3, 95.3, 55.9, 449, 130.2, 10.0),
     _files("inception_resnet_v2/", "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
            "e693bd0210a403b3192acc6073ad2e96", "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "d19885ff4a710c122648d3b5c3b684e4")),
    ("MobileNet", "mobilenet", 2017,
     "Howard et al., MobileNets: efficient convolutional neural networks for mobile vision applications, 2017",
     224, 32, "tf", Documented(16, 70.4, 89.5, 4.3, 55, 22.6, 3.4),
     _files("mobilenet/", "mobilenet_1_0_224_tf.h5", None, "mobilenet_1_0_224_tf_no_top.h5", None)),
    ("MobileNetV2", "mobilenet_v2", 2018,
     "Sandler, Howard, Zhu, Zhmoginov and Chen, MobileNetV2: inverted residuals and linear bottlenecks, 2018",
     224, 32, "tf", Documented(14, 71.3, 90.1, 3.5, 105, 25.9, 3.8),
     _files("mobilenet_v2/", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", None,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", None)),
    ("DenseNet121", "densenet", 2017, _DENSENET, 224, 32, "torch", Documented(33, 75.0, 92.3, 8.1, 242, 77.1, 5.4),
     _densenet("DenseNet121", "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738")),
    ("DenseNet169", "densenet", 2017, _DENSENET, 224, 32, "torch", Documented(57, 76.2, 93.2, 14.3, 338, 96.4, 6.3),
     _densenet("DenseNet169", "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b")),
    ("DenseNet201", "densenet", 2017, _DENSENET, 224, 32, "torch", Documented(80, 77.3, 93.6, 20.2, 402, 127.2, 6.7),
     _densenet("DenseNet201", "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1")),
    ("NASNetMobile", "nasnet", 2018, _NASNET, 224, 32, "tf", Documented(23, 74.4, 91.9, 5.3, 389, 27.0, 6.7),
     _files("nasnet/", "nasnet_mobile.h5", "020fb642bf7360b370c678b08e0adf61", "nasnet_mobile_no_top.h5",
            "1ed92395b5b598bdda52abe5c0dbfd63", top_url="NASNet-mobile.h5", no_top_url="NASNet-mobile-no-top.h5")),
    ("NASNetLarge", "nasnet", 2018, _NASNET, 331, 32, "tf", Documented(343, 82.5, 96.0, 88.9, 533, 344.5, 20.0),
     _files("nasnet/", "nasnet_large.h5", "11577c9a518f0070763c2b964a382f17", "nasnet_large_no_top.h5",
            "d81d89dc07e6e56530c4e77faddd61b5", top_url="NASNet-large.h5", no_top_url="NASNet-large-no-top.h5")),
    ("EfficientNetB0", "efficientnet", 2019,
     "Tan and Le, EfficientNet: rethinking model scaling for convolutional neural networks, 2019",
     224, 32, "none", Documented(29, 77.1, 93.3, 5.3, 132, 46.0, 4.9),
     _files("", "efficientnetb0.h5", "902e53a9f72be733fc0bcb005b3ebbac", "efficientnetb0_notop.h5",
            "50bc09e76180e00e4465e1a485ddc09d", base="https://storage.googleapis.com/keras-applications/")),
]

APPLICATIONS: dict[str, Application] = {
    row[0].lower(): Application(*row[:8], *row[8]) for row in _ROWS}


def get_application(key: str) -> Application:
    try:
        return APPLICATIONS[key]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown Keras application {key!r}. Choose one of: {', '.join(APPLICATIONS)}.") from None

"""Keras Applications: the lecture's table of pretrained ImageNet models, as data, and their builder.

The documented numbers are the table on https://keras.io/api/applications/ that the lecture shows.
The weights files are the ones Keras 3 itself downloads (`keras/src/applications/*.py`): the
file name it caches under `$KERAS_HOME/models`, the address and, where Keras checks one, the MD5.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from ..checks import shown
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

    @property
    def architecture(self) -> str:
        """Its name in the registry: the documented ImageNet classifier, top included."""
        return f"keras-{self.key}"

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

    def classifier(self, x, config, weights: str | None):
        """keras-<key>: the documented ImageNet classifier, top included, on preprocessed pixels.

        The `weights` knob picks random initial weights (as the documentation counts parameters) or
        the ImageNet weights, which only fit the size they were trained at; `weights` is their file,
        which the factory found (None: random, or a build that only counts).
        """
        if config.knobs["weights"] == "imagenet" and config.input_size != self.input_size:
            raise LabError("imagenet_size", name=self.name, fits=str(self.input_size), size=str(config.input_size))
        return self.model(x, weights=weights, input_size=config.input_size).outputs[0]   # (1000,)


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

def _row(*, files, **fields) -> Application:
    top, no_top = files
    return Application(**fields, top=top, no_top=no_top)


APPLICATIONS: dict[str, Application] = {app.key: app for app in [
    _row(name="Xception", module="xception", year=2017,
         paper="Chollet, Xception: deep learning with depthwise separable convolutions, 2017",
         input_size=299, min_input_size=71, preprocess="tf",
         documented=Documented(size_mb=88, top1=79.0, top5=94.5, params_m=22.9, depth=81, cpu_ms=109.4, gpu_ms=8.1),
         files=_files("xception/", "xception_weights_tf_dim_ordering_tf_kernels.h5",
                      "0a58e3b7378bc2990ea3b43d5981f1f6", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "b0042744bf5b25fce3cb969f33bebb97")),
    _row(name="VGG16", module="vgg16", year=2014,
         paper=_VGG,
         input_size=224, min_input_size=32, preprocess="caffe",
         documented=Documented(size_mb=528, top1=71.3, top5=90.1, params_m=138.4, depth=16, cpu_ms=69.5, gpu_ms=4.2),
         files=_files("vgg16/", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                      "64373286793e3c8b2b4e3219cbf3544b", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "6d6bbae143d832006294945121d1f1fc")),
    _row(name="VGG19", module="vgg19", year=2014,
         paper=_VGG,
         input_size=224, min_input_size=32, preprocess="caffe",
         documented=Documented(size_mb=549, top1=71.3, top5=90.0, params_m=143.7, depth=19, cpu_ms=84.8, gpu_ms=4.4),
         files=_files("vgg19/", "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                      "cbe5617147190e668d6c5d5026f83318", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "253f8cb515780f3b799900260a226db6")),
    _row(name="ResNet50", module="resnet", year=2015,
         paper=_RESNET,
         input_size=224, min_input_size=32, preprocess="caffe",
         documented=Documented(size_mb=98, top1=74.9, top5=92.1, params_m=25.6, depth=107, cpu_ms=58.2, gpu_ms=4.6),
         files=_resnet("ResNet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626")),
    _row(name="ResNet50V2", module="resnet_v2", year=2016,
         paper=_RESNET_V2,
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=98, top1=76.0, top5=93.0, params_m=25.6, depth=103, cpu_ms=45.6, gpu_ms=4.4),
         files=_resnet("ResNet50V2", "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917")),
    _row(name="ResNet101", module="resnet", year=2015,
         paper=_RESNET,
         input_size=224, min_input_size=32, preprocess="caffe",
         documented=Documented(size_mb=171, top1=76.4, top5=92.8, params_m=44.7, depth=209, cpu_ms=89.6, gpu_ms=5.2),
         files=_resnet("ResNet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21")),
    _row(name="ResNet101V2", module="resnet_v2", year=2016,
         paper=_RESNET_V2,
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=171, top1=77.2, top5=93.8, params_m=44.7, depth=205, cpu_ms=72.7, gpu_ms=5.4),
         files=_resnet("ResNet101V2", "6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5")),
    _row(name="ResNet152", module="resnet", year=2015,
         paper=_RESNET,
         input_size=224, min_input_size=32, preprocess="caffe",
         documented=Documented(size_mb=232, top1=76.6, top5=93.1, params_m=60.4, depth=311, cpu_ms=127.4, gpu_ms=6.5),
         files=_resnet("ResNet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c")),
    _row(name="ResNet152V2", module="resnet_v2", year=2016,
         paper=_RESNET_V2,
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=232, top1=78.0, top5=94.2, params_m=60.4, depth=307, cpu_ms=107.5, gpu_ms=6.6),
         files=_resnet("ResNet152V2", "a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33")),
    _row(name="InceptionV3", module="inception_v3", year=2015,
         paper="Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, "
               "Rethinking the Inception architecture for computer vision, 2015",
         input_size=299, min_input_size=75, preprocess="tf",
         documented=Documented(size_mb=92, top1=77.9, top5=93.7, params_m=23.9, depth=189, cpu_ms=42.2, gpu_ms=6.9),
         files=_files("inception_v3/", "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                      "9a0d58056eeedaa3f26cb7ebd46da564", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "bcbd6486424b2319ff4ef7d526e38f63")),
    _row(name="InceptionResNetV2", module="inception_resnet_v2", year=2016,
         paper="Szegedy, Ioffe, Vanhoucke and Alemi, "
               "Inception-v4, Inception-ResNet and the impact of residual connections, 2016",
         input_size=299, min_input_size=75, preprocess="tf",
         documented=Documented(size_mb=215, top1=80.3, top5=95.3, params_m=55.9, depth=449, cpu_ms=130.2, gpu_ms=10.0),
         files=_files("inception_resnet_v2/", "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                      "e693bd0210a403b3192acc6073ad2e96",
                      "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "d19885ff4a710c122648d3b5c3b684e4")),
    _row(name="MobileNet", module="mobilenet", year=2017,
         paper="Howard et al., "
               "MobileNets: efficient convolutional neural networks for mobile vision applications, 2017",
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=16, top1=70.4, top5=89.5, params_m=4.3, depth=55, cpu_ms=22.6, gpu_ms=3.4),
         files=_files("mobilenet/", "mobilenet_1_0_224_tf.h5", None, "mobilenet_1_0_224_tf_no_top.h5", None)),
    _row(name="MobileNetV2", module="mobilenet_v2", year=2018,
         paper="Sandler, Howard, Zhu, Zhmoginov and Chen, MobileNetV2: inverted residuals and linear bottlenecks, 2018",
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=14, top1=71.3, top5=90.1, params_m=3.5, depth=105, cpu_ms=25.9, gpu_ms=3.8),
         files=_files("mobilenet_v2/", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
                      None, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", None)),
    _row(name="DenseNet121", module="densenet", year=2017,
         paper=_DENSENET,
         input_size=224, min_input_size=32, preprocess="torch",
         documented=Documented(size_mb=33, top1=75.0, top5=92.3, params_m=8.1, depth=242, cpu_ms=77.1, gpu_ms=5.4),
         files=_densenet("DenseNet121", "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738")),
    _row(name="DenseNet169", module="densenet", year=2017,
         paper=_DENSENET,
         input_size=224, min_input_size=32, preprocess="torch",
         documented=Documented(size_mb=57, top1=76.2, top5=93.2, params_m=14.3, depth=338, cpu_ms=96.4, gpu_ms=6.3),
         files=_densenet("DenseNet169", "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b")),
    _row(name="DenseNet201", module="densenet", year=2017,
         paper=_DENSENET,
         input_size=224, min_input_size=32, preprocess="torch",
         documented=Documented(size_mb=80, top1=77.3, top5=93.6, params_m=20.2, depth=402, cpu_ms=127.2, gpu_ms=6.7),
         files=_densenet("DenseNet201", "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1")),
    _row(name="NASNetMobile", module="nasnet", year=2018,
         paper=_NASNET,
         input_size=224, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=23, top1=74.4, top5=91.9, params_m=5.3, depth=389, cpu_ms=27.0, gpu_ms=6.7),
         files=_files("nasnet/", "nasnet_mobile.h5",
                      "020fb642bf7360b370c678b08e0adf61", "nasnet_mobile_no_top.h5",
                      "1ed92395b5b598bdda52abe5c0dbfd63", top_url="NASNet-mobile.h5",
                      no_top_url="NASNet-mobile-no-top.h5")),
    _row(name="NASNetLarge", module="nasnet", year=2018,
         paper=_NASNET,
         input_size=331, min_input_size=32, preprocess="tf",
         documented=Documented(size_mb=343, top1=82.5, top5=96.0, params_m=88.9, depth=533, cpu_ms=344.5, gpu_ms=20.0),
         files=_files("nasnet/", "nasnet_large.h5",
                      "11577c9a518f0070763c2b964a382f17", "nasnet_large_no_top.h5",
                      "d81d89dc07e6e56530c4e77faddd61b5", top_url="NASNet-large.h5",
                      no_top_url="NASNet-large-no-top.h5")),
    _row(name="EfficientNetB0", module="efficientnet", year=2019,
         paper="Tan and Le, EfficientNet: rethinking model scaling for convolutional neural networks, 2019",
         input_size=224, min_input_size=32, preprocess="none",
         documented=Documented(size_mb=29, top1=77.1, top5=93.3, params_m=5.3, depth=132, cpu_ms=46.0, gpu_ms=4.9),
         files=_files("", "efficientnetb0.h5",
                      "902e53a9f72be733fc0bcb005b3ebbac", "efficientnetb0_notop.h5",
                      "50bc09e76180e00e4465e1a485ddc09d", base="https://storage.googleapis.com/keras-applications/")),
]}


def get_application(key: str) -> Application:
    try:
        return APPLICATIONS[key]
    except (KeyError, TypeError):
        raise LabError("unknown_application", name=shown(key), keys=", ".join(APPLICATIONS)) from None

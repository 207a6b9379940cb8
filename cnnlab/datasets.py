"""The datasets the lab knows, as data: their names, image shapes and classes.

A leaf: the architectures (which dataset the lecture trains each on), the data loaders and the
pages all read these specs, and this module reads nothing of cnnlab's.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLASSES = 1000               # ImageNet's count; labels run from 0 to MAX_CLASSES - 1
SOURCES = ("bundled", "full")    # the sample shipped with CNN Lab, or Keras's whole download
# A learner's own photos, and a folder of class folders, are read at OWN_SIDE x OWN_SIDE RGB: MobileNetV2's
# smallest ImageNet size, the transfer base they train on first. Its features at 96 px take half the time
# of those at 160 and 0.3 of those at 224 (bench/own_size.py: 4.4 ms an image on 2 cores), and a 96 px
# photo takes 27 KB in memory and about 20 KB as the PNG it is kept as.
OWN_SIDE = 96
TEST_SHARE = 0.2                 # of each class of a learner's own data, held out for the test

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("mnist", "MNIST handwritten digits", (28, 28, 1), MNIST_CLASSES),
    DatasetSpec("cifar10", "CIFAR-10", (32, 32, 3), CIFAR10_CLASSES),
]}

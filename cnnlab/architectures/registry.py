"""The registry: every architecture the lab knows, as data, and the one way to ask for them.

An architecture is a builder that returns the paper's layers in order (or, for networks with
branches, builds them on a tensor), plus what a learner and the rest of the lab need to know about
it: its paper, its dataset, how its images are prepared, what of it trains, and the settings a
classroom starts from. Pages, the command line and the tests list architectures with
`list_architectures`; adding a row here is all it takes for a new network to appear everywhere.
Keras's ImageNet applications join as `keras-<key>`, from their own table (`applications.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import checks
from ..errors import LabError
from .alexnet import alexnet
from .applications import APPLICATIONS, Application
from .lenet import ACTIVATIONS, POOLING, lenet5
from .transfer import head_layers, transfer
from .vgg import INITS, NORMS, keras_vgg19, vgg19


@dataclass(frozen=True)
class Knob:
    """An architecture-specific setting: a choice from a list or a number in a range (whole
    numbers only with `whole`)."""

    name: str
    default: Any                 # its label and help are "knobs.<name>.*" in the catalogues
    choices: tuple = ()
    range: tuple[float, float] | None = None
    whole: bool = False

    def check(self, value: Any) -> Any:
        if self.choices:
            return checks.choice(value, self.name, self.choices)
        low, high = self.range
        if self.whole:
            return checks.whole(value, self.name, int(low), int(high))
        return checks.number(value, self.name, low, high)


@dataclass(frozen=True)
class Classroom:
    """The Train page's first settings for an architecture: what fits a class period on a shared
    2-core server. `input_size` None is the paper's."""

    epochs: int = 1
    sample: float = 0.2          # of the training images
    input_size: int | None = 64
    width: float = 0.25
    knobs: tuple[tuple[str, Any], ...] = ()  # knobs that differ from their defaults, as (name, value)


PAPER_SCALE = Classroom(epochs=3, sample=1.0, input_size=None, width=1.0)


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    year: int
    paper: str
    dataset: str                # the dataset the lecture trains it on
    input_size: int             # the paper's (and lecture's) input side, in pixels
    min_input_size: int         # the smallest side at which no feature map vanishes
    builder: Callable           # chain: (width, classes, **knobs) -> layers; graph: (x, config, weights) -> tensor
    fit: str                    # how raw images reach input_size: "pad" (LeNet) or "resize"
    labels: str                 # the lecture's label format: "one-hot" or "integer"
    lecture_sample: float       # fraction of the full dataset the lecture trains on
    knobs: tuple[Knob, ...] = ()
    trainable: bool = True      # False: the lab shows it and predicts with it, but does not train it
    normalise: str = "rescale"  # pixel scaling before the network: /255, an ImageNet mode, or "none" (a network
                                # on a frozen base scales inside, as its base does: see pixel_scaling)
    depth: int | None = None    # weight layers, as the papers count them; None: count them in its layer table
    graph: bool = False         # True: builder works on a tensor (branches, Keras applications)
    fixed_width: bool = False   # Keras's own networks cannot be scaled by `width`
    application: str | None = None  # the Keras application it is (the zoo's keras-<key>)
    base_knob: str | None = None    # the knob naming the Keras application whose base it reuses, frozen
    head: Callable | None = None    # (config) -> layers: when only this new head trains, on the base's features
    classroom: Classroom = Classroom()
    own: Classroom | None = None    # the Train page's first settings on a learner's own photos; None: not offered
    explained_by: tuple[str, ...] = ()  # the lecture's explanations of it, keys under "explain." in the catalogues

    @property
    def zoo(self) -> bool:
        """One of Keras's ImageNet classifiers, shown on the Zoo page."""
        return self.application is not None

    def base(self, knobs: dict) -> Application | None:
        """The Keras application this network is or builds on, for resolved `knobs`."""
        if self.application is not None:
            return APPLICATIONS[self.application]
        return APPLICATIONS[knobs[self.base_knob]] if self.base_knob else None

    def pixel_scaling(self, knobs: dict) -> str:
        """How the network scales pixels: "rescale" (/255), an ImageNet mode, or "none"; a network
        on a frozen base scales them the way its base was trained."""
        return APPLICATIONS[knobs[self.base_knob]].preprocess if self.base_knob else self.normalise


class NameClash(Exception):
    """Two architectures registered under one name: the second would hide the first."""


ARCHITECTURES: dict[str, Architecture] = {}


class Inconsistent(Exception):
    """An architecture whose fields contradict each other."""


def register(arch: Architecture) -> Architecture:
    """Add an architecture, once its fields agree with each other and its name is new."""
    knobs = {knob.name for knob in arch.knobs}
    if arch.trainable and arch.fixed_width and arch.classroom.width != 1.0:
        raise Inconsistent(f"{arch.name} has fixed widths, so the Train page must start it at width 1.")
    if arch.base_knob and not {arch.base_knob, "weights"} <= knobs:
        raise Inconsistent(f"{arch.name} reuses a base: it needs the knobs {arch.base_knob!r} and 'weights'.")
    if arch.head is not None and arch.base_knob is None:
        raise Inconsistent(f"{arch.name} trains only a head, so it needs the base_knob that names its frozen base.")
    if arch.own is not None and (not arch.trainable or not {k for k, _ in arch.own.knobs} <= knobs):
        raise Inconsistent(f"{arch.name} is offered for own photos: it must train, and set only its own knobs.")
    if arch.name in ARCHITECTURES:
        raise NameClash(f"An architecture named {arch.name!r} is registered already "
                        f"({ARCHITECTURES[arch.name].title}).")
    ARCHITECTURES[arch.name] = arch
    return arch


def list_architectures(*, zoo: bool | None = None, trainable: bool | None = None,
                       dataset: str | None = None, own: bool | None = None) -> list[str]:
    """The registry's names, in its order, that match every filter given: `zoo` (Keras's ImageNet
    classifiers, or the lab's own networks), `trainable`, `dataset`, and `own` (offered for a
    learner's own photos). With `own=True`, the networks that train only a head on a frozen base's
    cached features come first: their first run takes seconds, so the Train page starts there."""
    found = [a for a in ARCHITECTURES.values()
             if (zoo is None or a.zoo == zoo) and (trainable is None or a.trainable == trainable)
             and (dataset is None or a.dataset == dataset) and (own is None or (a.own is not None) == own)]
    if own:
        found.sort(key=lambda a: a.head is None)
    return [a.name for a in found]


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise LabError("unknown_architecture", name=checks.shown(name), names=", ".join(ARCHITECTURES)) from None


for _arch in [
    Architecture(
        name="lenet5", title="LeNet-5", year=1998, depth=5,
        paper="LeCun et al., Gradient-based learning applied to document recognition, 1998",
        dataset="mnist", input_size=32, min_input_size=32, builder=lenet5, fit="pad",
        labels="one-hot", lecture_sample=1.0, explained_by=("lenet5",), classroom=PAPER_SCALE,
        own=Classroom(epochs=15, sample=1.0, input_size=32, width=1.0),
        knobs=(Knob("activation", "relu", choices=ACTIVATIONS),
               Knob("pooling", "average", choices=tuple(POOLING)))),
    Architecture(
        name="alexnet", title="AlexNet", year=2012, depth=8,
        paper="Krizhevsky, Sutskever and Hinton, ImageNet classification with deep CNNs, 2012",
        dataset="cifar10", input_size=224, min_input_size=163, builder=alexnet, fit="resize",
        labels="integer", lecture_sample=0.1, explained_by=("alexnet", "imagenet", "learning_rate"),
        classroom=Classroom(input_size=163), own=Classroom(epochs=15, sample=1.0, input_size=163, width=0.25),
        knobs=(Knob("dropout", 0.5, range=(0.0, 0.9)),)),
    Architecture(
        name="vgg19", title="VGG19", year=2014, depth=19,
        paper="Simonyan and Zisserman, Very deep convolutional networks for large-scale image recognition, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=vgg19, fit="resize",
        labels="integer", lecture_sample=0.1, explained_by=("vgg19", "imagenet", "learning_rate"),
        knobs=(Knob("weight_decay", 5e-4, range=(0.0, 0.1)),
               Knob("dropout", 0.5, range=(0.0, 0.9)),
               Knob("init", "glorot", choices=tuple(INITS)),       # he: a departure from the lecture
               Knob("norm", "none", choices=NORMS))),              # batch: a departure from the lecture
    Architecture(
        name="keras-vgg19-notop", title="VGG19 (Keras Applications, no top)", year=2014, depth=16,
        paper="keras.applications.VGG19(include_top=False); Simonyan and Zisserman, 2014",
        dataset="cifar10", input_size=224, min_input_size=32, builder=keras_vgg19, fit="resize",
        labels="integer", lecture_sample=0.1, trainable=False, normalise="caffe", fixed_width=True,
        explained_by=("vgg19", "imagenet")),
    Architecture(
        name="transfer", title="Transfer learning (frozen ImageNet base + new head)", year=2014,
        paper="A Keras application's convolutional base, frozen, with a small new classifier trained on top",
        dataset="cifar10", input_size=224, min_input_size=32, builder=transfer, fit="resize",
        labels="integer", lecture_sample=0.1, normalise="none", graph=True, fixed_width=True,
        base_knob="base", head=head_layers, classroom=Classroom(width=1.0),
        own=Classroom(epochs=15, sample=1.0, input_size=96, width=1.0, knobs=(("base", "mobilenetv2"),)),
        knobs=(Knob("base", "vgg19", choices=tuple(APPLICATIONS)),
               Knob("weights", "imagenet", choices=("imagenet", "random")),
               Knob("units", 256, range=(8, 4096), whole=True),
               Knob("dropout", 0.5, range=(0.0, 0.9)))),
    *(Architecture(
        name=app.architecture, title=f"{app.name} (Keras Applications)", year=app.year, paper=app.paper,
        dataset="imagenet", input_size=app.input_size, min_input_size=app.min_input_size, builder=app.classifier,
        fit="resize", labels="integer", lecture_sample=1.0, trainable=False, normalise=app.preprocess,
        depth=app.documented.depth, graph=True, fixed_width=True, application=app.key, explained_by=("imagenet",),
        knobs=(Knob("weights", "random", choices=("random", "imagenet")),))
      for app in APPLICATIONS.values()),
]:
    register(_arch)

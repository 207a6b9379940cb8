"""The lab's networks: the registry that describes them, their checked settings, and the factory.

    registry.py       every architecture as data, and `list_architectures` / `get_architecture`
    config.py         ModelConfig: the settings a model is built from, checked
    factory.py        build_model: raw images in, probabilities out, weights files found for the builders
    preprocessing.py  the lecture's preprocessing as layers inside the model
    steps.py          the lecture's preprocessing as the table of array shapes a learner reads
    lenet.py, alexnet.py, vgg.py, transfer.py, applications.py   the builders, as the papers describe them

The builders are leaves; registry imports them, config the registry, factory config, and the
preprocessing steps config. None of them imports this package's facade.
"""

from .config import MAX_INPUT_SIZE, MAX_RAW_SIZE, WIDTH_RANGE, ModelConfig, as_config
from .factory import build_model, build_without_weights, without_weights
from .registry import ARCHITECTURES, Architecture, Classroom, Knob, get_architecture, list_architectures

__all__ = ["ARCHITECTURES", "Architecture", "Classroom", "Knob", "ModelConfig", "build_model", "build_without_weights",
           "without_weights", "as_config", "get_architecture", "list_architectures", "MAX_INPUT_SIZE", "MAX_RAW_SIZE",
           "WIDTH_RANGE"]

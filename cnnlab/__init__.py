"""CNN Lab: the lecture's classic CNNs (LeNet-5, AlexNet, VGG19), their layer tables, data and training.

    import cnnlab
    model = cnnlab.build_model("lenet5")           # raw 28x28x1 MNIST pixels in, 10 probabilities out
    table = cnnlab.layer_table(model)              # shapes, parameters, MACs, receptive fields
    run = cnnlab.train(cnnlab.TrainConfig(cnnlab.ModelConfig("lenet5"), epochs=1))

cnnlab knows nothing about Streamlit: the app's pages are thin views over these functions.
"""

import os

# TensorFlow's C++ start-up notes (CPU features, absl) would bury a learner's one-line errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .architectures import (
    ARCHITECTURES,
    Architecture,
    Knob,
    ModelConfig,
    build_model,
    get_architecture,
    list_architectures,
)
from .data import Dataset, load_dataset, load_npz
from .datasets import DATASETS, DatasetSpec
from .images import normalise_digit, read_image
from .inference import (
    Evaluation,
    detect_collapse,
    evaluate_file,
    evaluate_model,
    predict_proba,
    random_test_image,
    top_k,
)
from .layer_table import LayerRow, LayerTable, layer_table
from .runs import TrainedModel, load_trained, read_run, save_run
from .training import RECIPES, History, Listener, Progress, Recipe, Run, TrainConfig, get_recipe, train

__all__ = [
    "ARCHITECTURES", "Architecture", "Knob", "ModelConfig", "build_model", "get_architecture", "list_architectures",
    "DATASETS", "Dataset", "DatasetSpec", "load_dataset", "load_npz",
    "normalise_digit", "read_image",
    "Evaluation", "TrainedModel", "detect_collapse", "evaluate_file", "evaluate_model", "load_trained", "predict_proba",
    "random_test_image", "top_k",
    "LayerRow", "LayerTable", "layer_table",
    "RECIPES", "History", "Listener", "Progress", "Recipe", "Run", "TrainConfig", "get_recipe", "read_run", "save_run",
    "train",
]

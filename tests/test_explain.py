"""Inside the network: evaluation tallies, feature maps, filters, Grad-CAM, a learner's own digit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnlab import ModelConfig, build_model, evaluate_model, layer_table, load_dataset, normalise_digit, read_image
from cnnlab.explain import feature_maps, filter_stats, first_filters, grad_cam, overlay, spatial_layers
from tests.conftest import LAB

SMALL = {"lenet5": {}, "alexnet": dict(input_size=163, width=0.125), "vgg19": dict(input_size=32, width=0.0625),
         "keras-vgg19-notop": dict(input_size=32),
         "transfer": dict(input_size=32, base="mobilenetv2", weights="random")}


def test_every_architecture_has_a_small_setting_here():
    assert set(SMALL) == set(LAB)


def test_confusion_matrix_counts_every_test_image():
    data = load_dataset("mnist")
    evaluation = evaluate_model(build_model("lenet5"), data.x_test, data.y_test, data.class_names)
    assert evaluation.confusion.sum() == len(data.x_test) == 5000
    assert list(evaluation.confusion.sum(axis=1)) == list(data.class_counts("test"))
    assert evaluation.accuracy == pytest.approx(np.trace(evaluation.confusion) / 5000)
    true_class, predicted_class = evaluation.worst_confusion()
    cell = evaluation.cell(true_class, predicted_class)
    assert len(cell) == evaluation.confusion[true_class, predicted_class] > 0
    assert (data.y_test[cell] == true_class).all() and (evaluation.predicted[cell] == predicted_class).all()


def test_per_class_accuracy_is_the_diagonal_share():
    from cnnlab import Evaluation

    probabilities = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    evaluation = Evaluation(np.array([0, 1, 1, 2, 2, 0]), probabilities, ("a", "b", "c"))
    np.testing.assert_allclose(evaluation.per_class_accuracy, [0.5, 0.5, 1.0])


@pytest.mark.parametrize("name", LAB)
def test_feature_map_shapes_equal_the_layer_table(name):
    model = build_model(name, **SMALL[name])
    image = np.random.default_rng(0).integers(0, 256, model.input_shape[1:]).astype(np.uint8)
    maps = feature_maps(model, image, max_channels=4)
    table = {row.name: row.output_shape for row in layer_table(name, **SMALL[name]).rows}
    assert [m.layer for m in maps] == [layer.name for layer in spatial_layers(model)]
    for m in maps:
        assert m.shape == table[m.layer]
        assert m.maps.shape == (min(4, m.shape[-1]),) + m.shape[:2]
        assert 0 <= m.maps.min() and m.maps.max() <= 1


def test_first_filters_are_pictures_in_colour_for_cifar():
    assert first_filters(build_model("alexnet", **SMALL["alexnet"])).shape == (12, 11, 11, 3)
    lenet = first_filters(build_model("lenet5"))
    assert lenet.shape == (6, 5, 5, 1) and lenet.min() >= 0 and lenet.max() <= 1
    stats = filter_stats(build_model("lenet5"))
    assert [s.layer for s in stats] == ["c1_conv", "c3_conv", "c5_conv"] and stats[1].kernel_shape == (5, 5, 6, 16)


def squares(n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images; class 1 has a bright 6x6 square somewhere, class 0 has none."""
    x = rng.integers(0, 60, (n, 32, 32, 1)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    corners = rng.integers(2, 24, (n, 2))
    for image, label, (r, c) in zip(x, y, corners):
        if label:
            image[r: r + 6, c: c + 6] = 255
    return x, y, corners


def test_grad_cam_finds_the_square_that_decides_the_class():
    import keras

    from cnnlab import Dataset, TrainConfig, train

    rng = np.random.default_rng(0)
    x, y, _ = squares(800, rng)
    data = Dataset("squares", "file", x, y, x[:100], y[:100], ("plain", "square"))
    run = train(TrainConfig(ModelConfig("lenet5", raw_shape=(32, 32, 1), classes=2), epochs=4, batch_size=32,
                            learning_rate=3e-3, seed=0), data=data)
    assert run.test_accuracy > 0.95
    test_x, test_y, corners = squares(40, np.random.default_rng(1))
    hits = total = 0
    for image, label, (r, c) in zip(test_x, test_y, corners):
        if not label:
            continue
        heat, explained, layer = grad_cam(run.model, image, class_index=1)
        assert heat.shape == (32, 32) and explained == 1 and layer == "c3_conv"
        on_square = heat[max(r - 2, 0): r + 8, max(c - 2, 0): c + 8]
        hits += on_square.max() == heat.max() and heat[r: r + 6, c: c + 6].mean() > 3 * heat.mean()
        total += 1
    assert hits / total >= 0.8, f"the heat map peaked on the square in {hits} of {total} images"
    painted = overlay(test_x[0], heat)
    assert painted.shape == (32, 32, 3) and painted.dtype == np.uint8
    keras.backend.clear_session()


def test_grad_cam_maps_back_onto_the_raw_image_for_every_architecture():
    for name in ("lenet5", "alexnet", "vgg19"):
        model = build_model(name, **SMALL[name])
        image = np.random.default_rng(0).integers(0, 256, model.input_shape[1:]).astype(np.uint8)
        heat, _, _ = grad_cam(model, image)
        assert heat.shape == model.input_shape[1:3]
    # With branches, only a layer every path crosses can be explained: ResNet's block outputs qualify.
    resnet = build_model("transfer", base="resnet50", input_size=64, weights="random")
    heat, _, layer = grad_cam(resnet, np.zeros((32, 32, 3), np.uint8))
    assert heat.shape == (32, 32) and layer == "conv5_block3_out"
    with pytest.raises(ValueError, match="inside a branch"):
        grad_cam(resnet, np.zeros((32, 32, 3), np.uint8), layer_name="conv5_block3_2_conv")
    with pytest.raises(ValueError, match="class_index"):
        grad_cam(build_model("lenet5"), np.zeros((28, 28, 1), np.uint8), class_index=12)


def unnormalised(digit: np.ndarray) -> bytes:
    """An MNIST digit as a learner might photograph it: dark ink on white paper, large, off-centre."""
    big = Image.fromarray(255 - digit[..., 0]).resize((200, 200), Image.BILINEAR)
    paper = Image.new("L", (400, 300), 255)
    paper.paste(big, (30, 60))
    buffer = io.BytesIO()
    paper.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def box(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit > 25)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_digit_normalisation_reproduces_mnist():
    """Photographed large, dark on white and off-centre, an MNIST digit comes back as MNIST had it:
    the same 20-pixel box, and the same picture up to the rounding of its centre of mass (1 pixel)."""
    for digit in load_dataset("mnist").x_test[:20, :, :, 0].astype(float):
        again = read_image(unnormalised(digit[..., None].astype(np.uint8)), (28, 28, 1), digit=True)[..., 0]
        assert max(box(again)) == max(box(digit)) == 20
        assert abs(min(box(again)) - min(box(digit))) <= 1
        best = max(np.corrcoef(np.roll(again, (dy, dx), (0, 1)).ravel(), digit.ravel())[0, 1]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert best > 0.9


def test_normalised_digit_is_centred_and_boxed():
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[20:200, 30:60] = 0  # a thick '1' near the top-left
    digit = normalise_digit(canvas)
    rows, cols = np.nonzero(digit > 25)
    assert rows.max() - rows.min() + 1 <= 21 and digit.shape == (28, 28)
    ys, xs = np.indices(digit.shape)
    assert abs((ys * digit).sum() / digit.sum() - 13.5) <= 1 and abs((xs * digit).sum() / digit.sum() - 13.5) <= 1


@pytest.mark.parametrize("grey", [np.eye(10) * (255 + 1j), np.full((10, 10), "255"), np.array([[None] * 3] * 3)])
def test_a_digit_that_is_not_pixel_values_is_refused(grey):
    with pytest.raises(ValueError, match="pixel values"):  # not cast to numbers behind the learner's back
        normalise_digit(grey)


@pytest.mark.parametrize("payload, words", [
    (b"", ["empty"]),
    (b"\x89PNG\r\n\x1a\n broken", ["not an image"]),
    (b"GIF89a" + b"\x00" * 20, ["not an image"]),
])
def test_bad_uploads_are_explained(payload, words):
    with pytest.raises(ValueError) as error:
        read_image(payload, (28, 28, 1))
    assert all(word in str(error.value) for word in words), str(error.value)


def test_unsupported_huge_and_blank_uploads():
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    with pytest.raises(ValueError, match="GIF.*PNG or JPEG"):
        read_image(gif.getvalue(), (28, 28, 1))
    huge = io.BytesIO()
    Image.new("L", (8000, 6000)).save(huge, "PNG")
    with pytest.raises(ValueError, match="too large"):
        read_image(huge.getvalue(), (28, 28, 1))
    blank = io.BytesIO()
    Image.new("L", (100, 100), 255).save(blank, "PNG")
    with pytest.raises(ValueError, match="empty"):
        read_image(blank.getvalue(), (28, 28, 1), digit=True)


def test_any_mode_becomes_the_dataset_format():
    for mode in ("1", "L", "P", "RGB", "RGBA", "CMYK", "I;16"):
        buffer = io.BytesIO()
        Image.new(mode, (50, 40)).save(buffer, "PNG" if mode != "CMYK" else "JPEG")
        assert read_image(buffer.getvalue(), (32, 32, 3)).shape == (32, 32, 3)
        assert read_image(buffer.getvalue(), (28, 28, 1), digit=False).shape == (28, 28, 1)


def test_phone_jpegs_with_several_pictures_are_read():
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    first, second = PILImage.new("RGB", (64, 48), (200, 30, 30)), PILImage.new("RGB", (64, 48), (0, 0, 255))
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert PILImage.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    image = read_image(buffer.getvalue(), (32, 32, 3))
    assert image[..., 0].mean() > 150 and image[..., 2].mean() < 60  # the first picture

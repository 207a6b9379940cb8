"""A learner's pictures: a picture costs the server by its pixels, so a small file that claims many
of them is refused from its header, a big photo is worked on at the scale the network needs, and
every refusal names the picture the learner gave, in their language."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnlab import normalise_digit, read_image
from cnnlab.errors import LabError
from cnnlab.images import MAX_PIXELS


def png(width: int, height: int, bits: int = 8, colour: int = 2, rows: bytes | None = None) -> bytes:
    """A PNG written by hand, as any tool could: 16-bit colour is beyond what Pillow saves. Without
    `rows` its data is a few bytes that no decoder should ever reach."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows or b"\x00"))
            + chunk(b"IEND", b""))


def encoded(picture: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """Smooth colour with grain, as a camera sees a scene."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [128 + 100 * np.sin(x / (width / 7) + c) * np.cos(y / (height / 5) - c) for c in (0, 1, 2)]
    grain = np.random.default_rng(0).normal(0, 10, (height, width, 1))
    return Image.fromarray(np.clip(np.stack(channels, -1) + grain, 0, 255).astype(np.uint8))


@pytest.fixture
def never_decoded(monkeypatch):
    def forbidden(self, *args, **kwargs):
        raise AssertionError("the picture was decoded before its header was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)
    monkeypatch.setattr(Image.Image, "load", forbidden)


def test_a_small_png_claiming_40_million_16_bit_pixels_is_refused_without_decoding(never_decoded):
    claim = png(6300, 6300, bits=16, colour=0)
    assert len(claim) < 1024
    tracemalloc.start()
    try:
        with pytest.raises(LabError) as refused:
            read_image(claim, (28, 28, 1), name="scan.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20
    message = str(refused.value)
    assert "scan.png is 6300x6300 pixels" in message and f"at most {MAX_PIXELS // 10**6} megapixels" in message
    assert "Resize it" in message
    assert "scan.png" in refused.value.in_language("ko") and "메가픽셀" in refused.value.in_language("ko")


def test_16_bit_colour_is_counted_at_its_decoded_size(never_decoded):
    with pytest.raises(LabError, match=r"decodes to 114 MB \(5000x4000 pixels at 48 bits each\).*16 bits per channel") \
            as refused:
        read_image(png(5000, 4000, bits=16, colour=2), (32, 32, 3))  # 20 megapixels, but 6 bytes each
    assert "8비트로 저장" in refused.value.in_language("ko")


def test_a_small_16_bit_colour_png_reads_as_its_colour():
    red = b"".join(b"\x00" + b"\xff\xff\x00\x00\x00\x00" * 40 for _ in range(30))
    image = read_image(png(40, 30, bits=16, colour=2, rows=red), (32, 32, 3))
    assert image[..., 0].min() == 255 and image[..., 1:].max() == 0


@pytest.mark.parametrize("side", [10_000, 15_000])  # past Pillow's warning, and past its own refusal
def test_a_decompression_bomb_is_the_labs_refusal_not_a_warning(side, never_decoded, recwarn):
    with pytest.raises(LabError, match=f"the upload is {side * side:,} pixels, too large"):
        read_image(png(side, side), (32, 32, 3))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_photo_the_size_of_the_network_reads_as_it_always_did():
    picture = encoded(photo(800, 600), "JPEG", quality=90)
    decoded = Image.open(io.BytesIO(picture))
    expected_rgb = np.asarray(decoded.convert("RGB").resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(read_image(picture, (32, 32, 3)), expected_rgb)
    expected_grey = np.asarray(decoded.convert("L").resize((28, 28), Image.BILINEAR))[..., None]
    np.testing.assert_array_equal(read_image(picture, (28, 28, 1), digit=False), expected_grey)


def test_a_big_jpeg_is_decoded_at_the_scale_the_network_needs(monkeypatch):
    big = photo(2400, 1800)
    picture = encoded(big, "JPEG", quality=90)
    decoded_sizes = []
    load = ImageFile.ImageFile.load

    def watched(self):
        decoded_sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", watched)
    image = read_image(picture, (32, 32, 3))
    assert set(decoded_sizes) == {(1200, 900)}  # a quarter of the pixels: 512 on each side are all it needs
    full = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB").resize((32, 32), Image.BILINEAR))
    assert np.abs(image.astype(int) - full).mean() < 2  # what the network receives hardly changes


def test_a_digit_photographed_on_a_big_page_is_the_same_digit():
    page = np.full((1800, 2400), 235, np.uint8)
    page[500:1300, 1000:1100] = 20     # a '7': its stem
    page[500:580, 1000:1500] = 20      # and its bar
    picture = encoded(Image.fromarray(page), "JPEG", quality=92)
    digit = read_image(picture, (28, 28, 1))[..., 0]
    reference = normalise_digit(np.asarray(Image.open(io.BytesIO(picture)).convert("L")))
    assert np.corrcoef(digit.ravel().astype(float), reference.ravel().astype(float))[0, 1] > 0.95


@pytest.mark.parametrize("payload", [b"not a picture at all", b"\x89PNG\r\n\x1a\n broken",
                                     encoded(photo(40, 30), "PNG")[:60]])
def test_an_unreadable_upload_is_named_not_shown_as_an_object(payload):
    for name, shown in ((None, ("the upload", "올린 파일")), ("holiday.png", ("holiday.png", "holiday.png"))):
        with pytest.raises(LabError) as refused:
            read_image(payload, (32, 32, 3), name=name)
        for lang, called in zip(("en", "ko"), shown):
            message = refused.value.in_language(lang)
            assert message.startswith(called) and "object at 0x" not in message and "BytesIO" not in message, message


def test_an_animated_png_is_read_from_its_first_frame():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    animation = encoded(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(animation)).n_frames == 3
    image = read_image(animation, (32, 32, 3))
    assert image[..., 0].min() > 240 and image[..., 1:].max() < 10


def test_a_long_narrow_picture_is_worked_on_reduced_and_costs_a_few_megabytes():
    pixels = np.full((1000, 24000), 255, np.uint8)  # 24 megapixels of white paper...
    pixels[200:800, 11800:12200] = 0                # ...with one thick black stroke
    strip = Image.fromarray(pixels)
    encoded = io.BytesIO()
    strip.save(encoded, format="PNG")
    tracemalloc.start()
    try:
        image = read_image(encoded.getvalue(), (28, 28, 1), name="strip.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.shape == (28, 28, 1)
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB for a {len(encoded.getvalue()) // 1024} KB file"


def test_a_palette_picture_counts_the_colours_it_is_converted_to():
    from cnnlab.images import _bits_per_pixel

    encoded = io.BytesIO()
    Image.new("P", (8, 8)).save(encoded, format="PNG", transparency=0)
    assert _bits_per_pixel(Image.open(encoded)) == 32  # only its header read, as the lab checks it

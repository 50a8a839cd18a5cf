"""Our PNG writer: a file any PNG reader accepts, read back here by the format's own rules."""

import struct
import zlib

import numpy as np
import pytest

from tinyllama_np.plot import heatmap_pixels, png_bytes, save_heatmap_png


def read_png(data):
    """Chunks checked (CRC), IHDR parsed, IDAT inflated, filter bytes (all 0) removed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        position += 12 + length
    assert list(chunks)[-1] == b"IEND"
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_png(png_bytes(pixels)), pixels)
    save_heatmap_png(tmp_path / "map.png", [[0.0, 1.0], [0.5, 0.25]], cell=4)
    image = read_png((tmp_path / "map.png").read_bytes())
    assert image.shape == (2 * 6 + 2, 2 * 6 + 2, 3)
    assert tuple(image[2, 2]) == (255, 255, 255) and tuple(image[2, 8]) == (8, 48, 107)


def test_heatmap_clips_to_unit_range():
    image = heatmap_pixels(np.array([[-3.0, 7.0]]), cell=2, gap=0)
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[0, 2]) == (8, 48, 107)


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.uint8), np.zeros((2, 2, 3)), np.zeros((0, 2, 3), np.uint8)])
def test_bad_pixels(bad):
    with pytest.raises(ValueError):
        png_bytes(bad)

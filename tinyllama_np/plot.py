"""Small charts drawn with characters, for terminals and lessons, and heat maps saved as PNG.

The PNG writer is our own, a few lines on zlib and struct (no plotting library): a file is
a signature and chunks (length, type, data, CRC-32); IHDR gives the size and colour type,
IDAT the zlib-compressed rows of pixels (each row led by a filter byte, 0 = none), IEND ends.
"""

import math
import struct
import zlib

import numpy as np

from .atomic import atomic_write


def line_chart(values, width=60, height=12, label="loss", marks=None):
    """Draw values (e.g. a loss per step) as rows of text. `marks`: {index: value} drawn as 'o'."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return f"(no finite {label} values to draw)"
    marks = {i: v for i, v in (marks or {}).items() if math.isfinite(v)}
    low = min(values + list(marks.values()))
    high = max(values + list(marks.values()))
    span = (high - low) or 1.0
    width = min(width, len(values))
    grid = [[" "] * width for _ in range(height)]

    def row_of(value):
        return height - 1 - int(round((value - low) / span * (height - 1)))

    for column in range(width):
        # Each column shows the mean of the values that fall into it.
        start = column * len(values) // width
        stop = max(start + 1, (column + 1) * len(values) // width)
        chunk = values[start:stop]
        grid[row_of(sum(chunk) / len(chunk))][column] = "*"
    for index, value in marks.items():
        column = min(width - 1, index * width // len(values))
        grid[row_of(value)][column] = "o"
    lines = []
    for r, row in enumerate(grid):
        axis = f"{high - r * span / (height - 1):8.3f} |" if r in (0, height - 1, height // 2) else "         |"
        lines.append(axis + "".join(row))
    lines.append("         +" + "-" * width)
    lines.append(f"          {label}: * per step" + (", o validation" if marks else "")
                 + f" ({len(values)} steps)")
    return "\n".join(lines)


def bar_chart(labels, values, width=40):
    """Horizontal bars, one line per label, scaled to the largest value."""
    largest = max(values) if len(values) and max(values) > 0 else 1.0
    label_width = max(len(str(label)) for label in labels)
    return "\n".join(f"{str(label):>{label_width}} {'#' * int(round(width * v / largest)):<{width}} {v:.3f}"
                     for label, v in zip(labels, values))


def png_bytes(pixels):
    """An (height, width, 3) uint8 RGB image -> the bytes of a PNG file."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 of shape (height, width, 3), got "
                         f"{pixels.dtype} {pixels.shape}")
    height, width, _ = pixels.shape
    if height == 0 or width == 0:
        raise ValueError("an image needs at least one pixel")

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b""))


def heatmap_pixels(matrix, cell=24, gap=2):
    """Values in [0, 1] as squares of `cell` pixels, white (0) to dark blue (1), on a grey grid."""
    matrix = np.clip(np.asarray(matrix, dtype=np.float64), 0.0, 1.0)
    rows, columns = matrix.shape
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    colours = (white + matrix[..., None] * (blue - white)).round().astype(np.uint8)
    image = np.full((rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3), 160, np.uint8)
    for r in range(rows):
        for c in range(columns):
            top, left = gap + r * (cell + gap), gap + c * (cell + gap)
            image[top:top + cell, left:left + cell] = colours[r, c]
    return image


def save_heatmap_png(path, matrix, cell=24):
    """Save a (rows, columns) matrix of values in [0, 1] as a PNG heat map (atomic write)."""
    with atomic_write(path) as file:
        file.write(png_bytes(heatmap_pixels(matrix, cell)))

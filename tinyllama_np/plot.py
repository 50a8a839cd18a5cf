"""Small charts drawn with characters, for terminals and lessons."""

import math


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


def save_png(path, image):
    """Write a 2-D array of values in [0, 1] as a greyscale PNG (0 black, 1 white).

    PNG by hand, so no imaging library is needed: an 8-byte signature, then chunks of
    (length, type, data, CRC-32): IHDR (size, 8-bit grey), IDAT (the rows, each prefixed
    with filter byte 0, zlib-compressed), IEND.
    """
    import struct
    import zlib

    import numpy as np

    from .atomic import atomic_write

    pixels = (np.clip(np.asarray(image, dtype=np.float64), 0, 1) * 255).round().astype(np.uint8)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"save_png needs a non-empty 2-D array, got shape {pixels.shape}")
    height, width = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels], axis=1).tobytes()

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with atomic_write(path) as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

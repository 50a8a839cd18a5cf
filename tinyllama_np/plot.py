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

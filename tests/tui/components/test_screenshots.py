"""Screenshots of every component, to LOOK at (not compared): SVG + PNG in /tmp/llm-internals-shots/.

Skipped unless `LLM_INTERNALS_SHOTS=1` (they take a few seconds and write files):

    LLM_INTERNALS_SHOTS=1 .venv/bin/python -m pytest tests/tui/components/test_screenshots.py

The SVG asks for "Fira Code", which cairosvg replaces with a proportional font (runs of `▀` then
spill past their cells); the PNG is made from a copy that uses DejaVu Sans Mono, and DejaVu Sans
(scaled to the cell width) for braille, which the mono font lacks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from textual.containers import Horizontal, Vertical

from tui.components.heat_strip import DEFAULT_COMPONENTS, HeatStrip
from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples, gqa_groups
from tui.components.histogram import Histogram
from tui.components.lens_grid import LensGrid
from tui.components.lineplot import LinePlot
from tui.components.tokens import TokenStrip

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.environ.get("LLM_INTERNALS_SHOTS"), reason="set LLM_INTERNALS_SHOTS=1 to write screenshots"),
]

SHOTS = Path("/tmp/llm-internals-shots")
_BRAILLE_TEXT = re.compile(r"<text ([^>]*)>([^<]*[\u2800-\u28ff][^<]*)</text>")


def to_png(svg_path: Path) -> Path:
    """Convert a Textual SVG screenshot to PNG with fonts cairosvg has here."""
    import cairosvg

    svg = svg_path.read_text()
    svg = svg.replace("font-family: Fira Code, monospace;", "font-family: DejaVu Sans Mono;")
    svg = _BRAILLE_TEXT.sub(r'<text \1 style="font-family: DejaVu Sans; font-size: 16.6px">\2</text>', svg)
    png = svg_path.with_suffix(".png")
    cairosvg.svg2png(bytestring=svg.encode(), write_to=str(png))
    return png


def attention(n: int, rng: np.random.Generator) -> np.ndarray:
    scores = rng.normal(size=(n, n)) * 2
    scores[:, 0] += 3  # an attention sink
    scores[np.triu_indices(n, 1)] = -np.inf
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.triu_indices(n, 1)] = np.nan  # masked, not zero
    return probs


def widgets(rng: np.random.Generator) -> dict[str, list]:
    pieces = ["<|im_start|>", "user", "\n", "def", " self", "(", "x", "):", "\n", "   ", " return", " x", " +", " 1"]
    ids = [151644, 872, 198, 750, 656, 7, 87, 1648, 198, 256, 470, 856, 488, 220]
    values = rng.standard_t(4, size=200_000) * 0.02
    counts, edges = np.histogram(values, bins=200)
    layers = 28
    series = {c: 0.02 + 0.004 * np.sin(np.arange(layers) / 4 + i) for i, c in enumerate(DEFAULT_COMPONENTS)}
    series["down"][-1] = 0.05
    weights = rng.normal(size=(96, 256))
    weights[:, 17] *= 8  # an outlier channel
    lens_pieces = [[str(rng.choice([" the", " cat", "\n", " on", "ations", " 1"])) for _ in pieces] for _ in range(layers + 1)]
    return {
        "heatmap": [
            Heatmap(attention(24, rng), title="L3 H5", row_labels=(pieces * 2)[:24], col_labels=(pieces * 2)[:24],
                    row_axis="query", col_axis="key", vmin=0, vmax=1),  # fmt: skip
            Heatmap(weights, title="q_proj (diverging, absmax)", ramp="diverging"),
        ],
        "heatmap_512": [Heatmap(attention(512, rng), title="512 tokens, block max", vmin=0, vmax=1)],
        "small_multiples": [SmallMultiples([attention(32, rng) for _ in range(12)], groups=gqa_groups(12, 2), vmin=0, vmax=1)],
        "histogram": [Histogram(edges, counts, title="mlp.down_proj.weight", subtitle="200 bins")],
        "histogram_log": [Histogram(edges, counts, title="mlp.down_proj.weight", log_counts=True)],
        "lineplot_strip": [
            LinePlot(series, title="std across layers"),
            HeatStrip(np.stack([series[c] for c in DEFAULT_COMPONENTS]), metric="std"),
        ],
        "tokens_lens": [
            TokenStrip(pieces * 3, ids * 3, special=[p.startswith("<|") for p in pieces * 3]),
            LensGrid(lens_pieces, rng.uniform(size=(layers + 1, len(pieces))) ** 2, input_pieces=pieces,
                     layers=[*range(layers), "final"]),  # fmt: skip
        ],
    }


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_write_screenshots(host, size) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name in widgets(np.random.default_rng(0)):
        built = widgets(np.random.default_rng(0))[name]
        container = Horizontal(*built) if name == "heatmap" else Vertical(*built)
        app = host(container)
        async with app.run_host(size=size) as pilot:
            built[0].focus()
            await pilot.press("down", "right")
            await pilot.pause()
            svg = app.save_screenshot(f"{name}-{size[0]}x{size[1]}.svg", path=str(SHOTS))
        assert to_png(Path(svg)).stat().st_size > 0

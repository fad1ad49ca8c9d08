"""Record what the shipped demo model's worker answers to the views' requests, for the views' fake data
source (tests/tui/views/fake_source.py). Run again after a change to the wire format:

    PYTHONPATH=$PWD python tests/tui/views/record_demo_data.py

Arrays are stored as {"__ndarray__": nested lists, "dtype": ...}; the fake turns them back into numpy.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "recorded" / "demo.json.gz"
OUT_CAUSES = OUT.with_name("causes.json.gz")  # activations, patching, attribution (views of those names)
TENSOR = "model.layers.1.self_attn.q_proj.weight"
ATTENTION_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"
LENS_PROMPT = "import numpy as np\nx = np.zeros"
CAUSES_PROMPT = "def f(x): return x"  # the default prompt of the activations and attribution views
TRACKED = ["(", "."]  # followed through the layers on LENS_PROMPT
PATCH_PROMPTS = ("def f(x): return x", "def g(x): return x")  # the patching view's default clean and corrupted
TOKENS_TEXT = "def __init__(self, name):\n    self.name = name  # café 中文"


def encode(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def main() -> None:
    from internals.demo_path import demo_model_path
    from internals.model import open_model
    from internals.worker.client import InProcessClient
    from internals.worker.service import ModelService

    client = InProcessClient(ModelService(open_model(str(demo_model_path()))))
    tokens = client.tokenize(TOKENS_TEXT)
    record = {
        "summary": client.summary(),
        "tree": client.tree(),
        "tensor_stats": {TENSOR: client.tensor_stats(TENSOR, bins=64, clip=False)},
        "matrix_preview": {TENSOR: client.matrix_preview(TENSOR, rows=48, cols=160)},
        "cross_layer": client.cross_layer(),
        "tokenize": {TOKENS_TEXT: tokens},
        "neighbours": {str(i): client.neighbours(i, k=12) for i in tokens["ids"][:3]},
        "attention": {f"{layer}": client.attention(ATTENTION_PROMPT, layer, bins=96) for layer in (0, 1)},
        "lens": {LENS_PROMPT: client.lens(LENS_PROMPT, top_k=5)},
    }
    causes = {
        "activations": {CAUSES_PROMPT: client.activations(CAUSES_PROMPT)},
        "patch": {"|".join(PATCH_PROMPTS): client.patch(*PATCH_PROMPTS)},
        "attribute": {CAUSES_PROMPT: client.attribute(CAUSES_PROMPT)},
        "lens_tracks": {"|".join([LENS_PROMPT, *TRACKED]): client.lens_tracks(LENS_PROMPT, TRACKED)},
    }
    OUT.parent.mkdir(exist_ok=True)
    for path, data in ((OUT, record), (OUT_CAUSES, causes)):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            json.dump(encode(data), fh)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

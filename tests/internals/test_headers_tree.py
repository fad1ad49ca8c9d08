"""`summary`/`stats` of a folder from config.json + headers (no transformers) equal the transformers answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from internals.aggregates import aggregate
from internals.model import open_model
from internals.provisional_info import HEADER_LAYOUTS
from tests.conftest import TINY_CONFIGS

FUSED = {"mixtral"}  # transformers fuses the stored experts at load time: it must build the tree


def _expected_source(kind: str) -> str:
    """The headers path serves the model types it has a layout for (unless transformers converts the
    checkpoint); every other architecture goes through transformers, with the same answer."""
    return "headers" if TINY_CONFIGS[kind]["model_type"] in HEADER_LAYOUTS and kind not in FUSED else "transformers"


def _answers(folder: str, headers: bool) -> tuple[str, dict, dict]:
    model = open_model(folder, headers=headers)
    summary = model.summary()
    results = list(model.iter_stats(model.tensor_names(), bins=16))
    stats = {"tensors": results, "aggregates": aggregate(model.structure, results, summary["num_layers"])}
    return model.tree_source, summary, stats


@pytest.mark.parametrize("kind", sorted(TINY_CONFIGS))
def test_headers_path_gives_the_transformers_answer(tiny_models, kind):
    folder = str(tiny_models(kind, "bfloat16"))
    exact_source, exact_summary, exact_stats = _answers(folder, headers=False)
    source, summary, stats = _answers(folder, headers=True)
    assert exact_source == "transformers"
    assert source == _expected_source(kind)
    assert summary.pop("tree_source") == source and exact_summary.pop("tree_source") == "transformers"
    assert summary == exact_summary
    assert stats == exact_stats


def test_renamed_or_extra_tensors_fall_back(tiny_models, tmp_path):
    import shutil

    src = tiny_models("llama", "bfloat16")
    for change in ("extra", "missing"):
        folder = tmp_path / change
        shutil.copytree(src, folder)
        weights = next(folder.glob("*.safetensors"))
        raw = weights.read_bytes()  # rename or drop one tensor in the header (its bytes stay in place)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        name = "model.layers.0.mlp.up_proj.weight"
        if change == "extra":
            header["model.layers.0.mlp.extra_proj.weight"] = header.pop(name)
        else:
            header.pop(name)
        body = json.dumps(header).encode()
        weights.write_bytes(len(body).to_bytes(8, "little") + body + raw[8 + n:])
        assert open_model(str(folder), headers=True).tree_source == "transformers"


def test_summary_of_a_folder_does_not_import_transformers(tiny_models):
    folder = str(tiny_models("qwen2", "bfloat16"))
    code = (f"import sys, json; from internals.cli.main import main; rc = main(['summary', {folder!r}, '--json']);"
            "sys.stderr.write(json.dumps(['transformers' in sys.modules, 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stderr.strip().splitlines()[-1]) == [False, False]
    assert json.loads(out.stdout)["tree_source"] == "headers"

"""The summary/tree cache that lets the explorer draw the tree before its worker is up."""

from __future__ import annotations

import os
import subprocess
import sys

from internals.info_cache import load_model_info, save_model_info
from internals.model import open_model
from internals.sources import resolve_source
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from tests_helpers import REPO


def test_worker_saves_and_explorer_side_loads_without_torch(tiny_models, tmp_path):
    folder = tiny_models("qwen2")
    source = resolve_source(str(folder))
    assert load_model_info(source) is None
    client = InProcessClient(ModelService(open_model(str(folder))))
    tree = client.tree()
    info = load_model_info(source)
    assert info is not None and info["tree"] == tree and info["summary"] == client.summary()
    code = ("import sys\nfrom internals.info_cache import load_model_info\nfrom internals.sources import resolve_source\n"
            f"assert load_model_info(resolve_source({str(folder)!r}))\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=os.environ.copy())


def test_a_changed_file_invalidates_the_entry(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(tiny_models("llama"), folder)
    source = resolve_source(str(folder))
    save_model_info(source, {"x": 1}, [])
    assert load_model_info(source) == {"summary": {"x": 1}, "tree": []}
    os.utime(folder / "model.safetensors", ns=(1, 1))
    assert load_model_info(resolve_source(str(folder))) is None

"""scripts/gpu-check in its CPU dry run: the venv it builds, the env and inproc stages, its JSON lines.

The GPU run itself needs a GPU (see the README's Reliability section); this keeps the script from rotting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests_helpers import REPO


@pytest.mark.slow
def test_dry_run_of_env_and_inproc_writes_passing_json_lines(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "DRY_RUN": "1", "STAGES": "env inproc", "OUT": str(out), "VENV": str(tmp_path / "venv"),
           "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the script must find the repo itself (editable install or its own fallback)
    run = subprocess.run([str(REPO / "scripts" / "gpu-check")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all({"stage", "check", "ok"} <= set(line) for line in lines)
    checks = {(line["stage"], line["check"]): line for line in lines}
    assert checks[("setup", "environment")]["ok"] is True
    assert checks[("env", "environment")]["ok"] is True and checks[("env", "environment")]["dry_run"] is True
    for stage in ("env", "inproc"):
        assert checks[(stage, "stage_end")]["ok"] is True
    attention = [line for line in lines if line["check"] == "attention_vs_fp32_eager"]
    assert len(attention) == 3 and all(line["ok"] and line["max_abs_diff"] < 1e-4 for line in attention)
    assert checks[("inproc", "lens_top1_vs_fp32")]["ok"] is True
    assert checks[("inproc", "generation")]["new_tokens"] > 0
    summary = checks[("summary", "summary")]
    assert summary["ok"] is True and summary["failed"] == []
    assert not any(stage in {line["stage"] for line in lines} for stage in ("worker", "offload", "demos"))

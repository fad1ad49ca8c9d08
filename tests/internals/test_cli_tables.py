"""Tables for people (`internals.cli.tables`): no value is ever cut short; at a narrow width names wrap and the
least needed columns are left out, with a line that says which; written to a pipe, every column is kept."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from internals.cli.render import print_stats_table
from internals.cli.tables import Column, fitted, output_console
from tests_helpers import run_cli_in_process

COLUMNS = [Column("name", "left", wraps=True), Column("shape", "left", keep=4), Column("dtype", "left", keep=1),
           Column("mean", keep=5), Column("kurtosis", keep=2)]
ROWS = [["model.layers.0.self_attn.q_proj.weight", "1536×1536", "bfloat16", "-4.867e-08", "2.184e+04"]]


def test_every_column_fits_a_wide_terminal():
    assert fitted(COLUMNS, ROWS, 200) == [0, 1, 2, 3, 4]


def test_the_least_needed_columns_go_first_and_the_name_stays():
    # the name counts NAME_MIN_WIDTH (24) wide, as it wraps: 24 + 9 + 8 + 10 + 9 + 3 * 5 + 1 = 76 characters
    assert fitted(COLUMNS, ROWS, 76) == [0, 1, 2, 3, 4]
    assert fitted(COLUMNS, ROWS, 75) == [0, 1, 3, 4]  # dtype (keep 1) first
    assert fitted(COLUMNS, ROWS, 65) == [0, 1, 3, 4]
    assert fitted(COLUMNS, ROWS, 64) == [0, 1, 3]  # then kurtosis (keep 2)
    assert fitted(COLUMNS, ROWS, 10) == [0]  # never the name


def _stats_rows() -> list[dict]:
    return [{"name": f"model.layers.{i}.mlp.down_proj.weight", "shape": [1536, 8960], "dtype": "bfloat16",
             "mean": -4.867e-08 * (i + 1), "std": 0.02498, "min": -7.25, "max": 7.4375, "kurtosis": 21840.5,
             "zeros": 19} for i in range(3)]


def _printed(width: int) -> str:
    out = io.StringIO()
    print_stats_table(_stats_rows(), Console(file=out, width=width))
    return out.getvalue()


def test_a_narrow_table_cuts_no_number_and_says_what_it_left_out():
    text = _printed(80)
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    for row in _stats_rows():
        for key in ("mean", "std", "min", "max"):
            assert f"{row[key]:.4g}" in text  # whole: -4.867e-08, not -4.86…
    assert "not shown at this width: dtype, kurtosis, zeros (--json has every field)" in text
    first_cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert all(row["name"] in first_cells for row in _stats_rows())  # every name whole, wrapped over lines


def test_a_wide_table_shows_every_column_and_no_note():
    text = _printed(200)
    assert "not shown" not in text and "…" not in text
    assert all(h in text for h in ("shape", "dtype", "kurtosis", "zeros", "2.184e+04", "1536×8960"))


def test_a_pipe_keeps_every_column(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width >= 10_000  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "90")
    assert output_console().width == 90


def test_stats_command_at_80_columns(tiny_models):
    folder = tiny_models("llama")
    proc = run_cli_in_process("stats", str(folder), "--json")
    assert proc.returncode == 0, proc.stderr
    tensors = json.loads(proc.stdout)["tensors"]
    proc = run_cli_in_process("stats", str(folder), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout and max(len(line) for line in proc.stdout.splitlines()) <= 80
    numbers = set(re.findall(r"-?\d[\d.e+-]*", proc.stdout))
    for t in tensors:
        assert f"{t['mean']:.4g}" in numbers and f"{t['max']:.4g}" in numbers

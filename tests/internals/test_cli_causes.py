"""`activations`, `patch`, `attribute` and `lens --track` as a user runs them (real subprocesses on the demo
model): the JSON contracts of docs/contracts.md, and bad input as one `error:` line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_cli import assert_user_error
from tests_helpers import run_cli

CLEAN, CORRUPT = "def f(x): return x", "def g(x): return x"


def test_activations_json_contract():
    proc = run_cli("activations", "--prompt", CLEAN, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"tokens", "token_ids", "layers", "residual_norm", "massive", "massive_channels",
                        "massive_channel_spans", "sink_share", "rule"}
    layers = len(out["layers"]) - 1
    assert out["layers"] == ["embed", *range(layers)] and len(out["tokens"]) == len(out["token_ids"]) == 6
    assert np.array(out["residual_norm"]).shape == (layers + 1, 6) and np.all(np.array(out["residual_norm"]) > 0)
    assert len(out["massive"]) == 20 and set(out["massive"][0]) >= {"value", "layer", "position", "channel", "token"}
    sizes = [abs(m["value"]) for m in out["massive"]]
    assert sizes == sorted(sizes, reverse=True)
    assert out["massive_channels"] == [c["channel"] for c in out["massive_channel_spans"]]
    assert all(isinstance(c, int) for c in out["massive_channels"])
    shares = np.array(out["sink_share"])
    assert shares.shape[0] == layers and np.all((shares >= 0) & (shares <= 1))


def test_patch_json_contract_and_lens_tracks():
    proc = run_cli("patch", "--clean", CLEAN, "--corrupt", CORRUPT, "--target", " x", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"clean_tokens", "corrupt_tokens", "target", "target_id", "corrupt_top", "clean_logit_diff",
            "corrupt_logit_diff", "residual", "attention", "mlp", "heads"} <= set(out)
    assert out["target"] == " x" and out["clean_tokens"][1] == " f" and out["corrupt_tokens"][1] == " g"
    residual = np.array(out["residual"])
    assert residual.shape == np.array(out["mlp"]).shape == np.array(out["attention"]).shape == (3, 6)
    # the clean last layer output at the last position is the clean run; position 0 is the same in both prompts
    assert np.isclose(residual[-1, -1], 1.0, atol=1e-3) and np.allclose(residual[:, 0], 0.0, atol=1e-3)
    assert np.array(out["heads"]).shape[0] == 3


def test_lens_track_json_in_process(capsys):
    """In this process (`main`, not a subprocess: the subprocesses above already prove the entry point)."""
    from internals.cli.main import main

    assert main(["lens", "--prompt", CLEAN, "--track", " x", "--track", "(", "--json"]) == 0
    tracks = json.loads(capsys.readouterr().out)["tracks"]
    assert tracks["labels"] == [" x", "("] and np.array(tracks["ranks"]).shape == (6, 2)
    assert [(r["layer"], r["stage"]) for r in tracks["readouts"][:2]] == [(0, "attention"), (0, "layer")]


def test_attribute_json_contract_adds_up():
    proc = run_cli("attribute", "--prompt", CLEAN, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"tokens", "target", "target_id", "logit", "bias", "embedding", "attention", "heads", "mlp"}
    assert len(out["attention"]) == len(out["mlp"]) == len(out["heads"]) == 3
    total = out["embedding"] + sum(out["attention"]) + sum(out["mlp"]) + out["bias"]
    assert abs(total - out["logit"]) < 1e-3
    assert np.allclose([sum(h) for h in out["heads"]], out["attention"], atol=1e-3)  # no o_proj bias in Qwen2


def test_mismatched_lengths_are_one_line():
    proc = run_cli("patch", "--clean", CLEAN, "--corrupt", "def g(x, y): return x", "--json")
    assert_user_error(proc, "same number of tokens", "' f'", "' y'")


def test_a_target_of_several_tokens_is_one_line(capsys):
    from internals.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["attribute", "--prompt", CLEAN, "--target", "hello world"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "exactly one token" in err and "'hel', 'lo'" in err

"""The diff view alone (fake data source): ΔW numbers and histogram of a tensor, its singular values on `k`,
a module's exact aggregate, the behaviour diff on a prompt (progress, Escape cancels); and the tree's badges."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from tui.components.heatmap import Heatmap
from tui.diff_badges import diff_badges
from tui.messages import Progress
from tui.model_tree import ModelTree
from tui.views.diff import DiffView
from views.harness import FakeSource, ViewApp, settle, screen_text

pytestmark = pytest.mark.anyio
NAME = "model.layers.1.self_attn.q_proj.weight"


def tensor_diff(name: str, base: float, delta: float) -> dict:
    return {"name": name, "shape": [144, 144], "base_norm": base, "delta_norm": delta, "rel_change": delta / base,
            "cosine": 0.97, "max_abs_change": 0.125, "rank": None,
            "histogram": {"edges": list(np.linspace(-0.125, 0.125, 9)), "counts": [1, 20, 300, 9000, 9000, 300, 20, 1]}}


SUMMARY = {"base": "b", "tuned": "t", "kind": "adapter", "only_in_base": [], "only_in_tuned": [], "aggregates": {},
           "tensors": [tensor_diff(NAME, 16.0, 4.0), tensor_diff("model.layers.1.self_attn.k_proj.weight", 12.0, 0.0),
                       tensor_diff("model.layers.0.mlp.up_proj.weight", 20.0, 1.0)]}
RANK = {"singular_values": [3.0, 1.5, 1.0, 0.5], "stable_rank": 1.5, "effective_rank_90": 3, "effective_rank_99": 4}
BEHAVIOUR = {"tokens": ["def", " g", "re"], "kl": [0.5, 2.0, 1.0],
             "rose": [{"token": ":", "token_id": 5, "delta_logprob": 3.5}],
             "fell": [{"token": "x", "token_id": 7, "delta_logprob": -2.0}],
             "residual_cosine": [[1.0, 1.0, 1.0], [0.99, 0.98, 0.97], [0.9, 0.8, 0.85], [0.7, 0.6, 0.65]]}


class DiffSource(FakeSource):
    """The recorded demo answers plus made-up diff answers (shapes as the worker's)."""

    def diff_summary(self, bins=64, on_progress=None):
        self.calls.append(("diff_summary", (), {}))
        return SUMMARY

    def diff_tensor(self, name, bins=64):
        self.calls.append(("diff_tensor", (name,), {"bins": bins}))
        return next(t for t in SUMMARY["tensors"] if t["name"] == name)

    def diff_rank(self, name):
        self.calls.append(("diff_rank", (name,), {}))
        return RANK

    def diff_behaviour(self, prompt, top=10, on_progress=None):
        self.calls.append(("diff_behaviour", (prompt,), {"top": top}))
        if on_progress is not None:
            on_progress(0.5, "running both models")
        if self.gate is not None:
            self.gate.wait(10)
        return BEHAVIOUR


def node(source, name):
    return next(n for n in source.data["tree"] if n["name"] == name)


async def test_a_tensor_shows_its_change_and_on_k_its_singular_values():
    source = DiffSource()
    app = ViewApp(DiffView(data_source=source, id="diff"))
    async with app.run_test(size=(140, 45)) as pilot:
        app.view.show(node(source, NAME))
        await settle(app, pilot)
        shot = screen_text(app)
        assert "rel change %" in shot and "25" in shot and "0.97" in shot and "ΔW of " + NAME in shot
        assert app.view.export_data()["tensor"]["delta_norm"] == 4.0
        app.view.focus()
        await pilot.press("k")
        await settle(app, pilot)
        shot = screen_text(app)
        assert "stable rank 1.5" in shot and "effective rank 90% 3" in shot and "99% 4" in shot
        assert [c[0] for c in source.calls] == ["diff_tensor", "diff_rank"]
        assert app.view.export_data()["rank"] == RANK


async def test_a_module_shows_the_exact_aggregate_of_its_tensors():
    source = DiffSource()
    app = ViewApp(DiffView(data_source=source, id="diff"))
    async with app.run_test(size=(140, 45)) as pilot:
        app.view.set_summary(SUMMARY)
        app.view.show(node(source, "model.layers.1.self_attn"))
        await settle(app, pilot)
        expected = math.sqrt(4.0 ** 2 + 0.0) / math.sqrt(16.0 ** 2 + 12.0 ** 2)
        assert app.view.data["rel_change"] == pytest.approx(expected) and app.view.data["tensors"] == 2
        assert f"{expected:.6g}" in screen_text(app)
        assert source.calls == []  # from the summary: nothing asked


async def test_the_behaviour_diff_on_a_prompt_draws_kl_and_the_cosine_heatmap():
    source = DiffSource()
    app = ViewApp(DiffView(data_source=source, id="diff"))
    async with app.run_test(size=(140, 45)) as pilot:
        app.view.focus()
        await pilot.press("p")
        await pilot.press(*"def greet")
        await pilot.press("enter")
        await settle(app, pilot)
        assert source.calls[-1] == ("diff_behaviour", ("def greet",), {"top": 10})
        shot = screen_text(app)
        assert "KL(tuned ‖ base) per position" in shot and "'re'" in shot and "next token rose: ':' +3.50" in shot
        heat = app.view.query_one("#diff-cosine", Heatmap)
        assert heat.matrix.shape == (4, 3) and heat.matrix.min() == pytest.approx(0.6)
        assert app.of(Progress) and app.view.export_data()["behaviour"] is BEHAVIOUR


async def test_escape_cancels_a_running_behaviour_diff():
    source = DiffSource()
    source.gate = threading.Event()
    app = ViewApp(DiffView(data_source=source, id="diff"))
    async with app.run_test(size=(140, 45)) as pilot:
        app.view.run_behaviour("def")
        await pilot.pause()
        app.view.focus()
        await pilot.press("escape")
        source.gate.set()
        await settle(app, pilot)
        assert app.view.behaviour is None and not app.view.query_one("#diff-behaviour").display
        assert "cancelled" in screen_text(app)


def test_badges_are_exact_module_aggregates():
    badges = diff_badges(SUMMARY)
    assert badges[NAME] == 0.25 and badges["model.layers.1.self_attn.k_proj.weight"] == 0.0
    assert badges["model.layers.1.self_attn"] == pytest.approx(4.0 / 20.0)
    assert badges[""] == pytest.approx(math.sqrt(17.0) / math.sqrt(16.0 ** 2 + 12.0 ** 2 + 20.0 ** 2))


async def test_the_tree_draws_the_badges():
    source = DiffSource()
    tree = ModelTree(id="tree")
    app = ViewApp(tree)
    async with app.run_test(size=(100, 60)) as pilot:
        tree.populate(source.data["tree"], source.data["summary"])
        tree.set_badges(diff_badges(SUMMARY))
        tree.select_name(NAME)
        await settle(app, pilot)
        shot = screen_text(app)
        assert "Δ25%" in shot  # q_proj.weight
        assert "Δ20%" in shot  # its attention module: sqrt(16)/sqrt(16²+12²)
        assert "[144×144]" in shot

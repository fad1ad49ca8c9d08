"""Explorer benchmarks (issue 7, items 3 and 5), JSON to stdout and benchmarks/out/explorer.json.

3. Time from the command to an interactive tree, cold Python imports included, for a checkpoint with the
   DeepSeek-R1-Distill-Qwen-1.5B shapes and for the demo model: a fresh process starts the explorer (headless,
   its own worker process, as `llm-internals MODEL` does) and stops the clock when the tree is drawn.
   First open (empty caches: the provisional tree read from the file headers is interactive first; the
   exact transformers tree replaces it when the worker has built it, reported as `*_exact_tree_s`) and
   second open (summary/tree cache). Baseline in the same run: a process
   that only imports textual and draws an empty app (the floor for any Textual program here).
   Also: whole-model statistics read back from the on-disk statistics cache.
5. Keypress to redrawn frame (Pilot, p50/p95; the model in its own worker process, as in real use): moving
   through the tree (the demo model's, and a 100-layer one), and switching views once each has been shown
   (the first display of each view is reported apart), against a trivial Textual app's keypress to frame
   measured in the same run.

Usage: python benchmarks/bench_explorer.py [--layers N] [--repeats K]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

_OPEN_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
import asyncio
sys.path.insert(0, {root!r})
mode, model = sys.argv[1], sys.argv[2]

async def main():
    if mode == "baseline":
        from textual.app import App
        from textual.widgets import Tree
        class A(App):
            def compose(self):
                yield Tree("x")
        app = A()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            elapsed = time.perf_counter() - t0
            return elapsed, elapsed
    from internals.cli.explore import first_screen_info
    from internals.sources import resolve_source
    from internals.worker.spawn import ManagedWorker, WorkerOptions
    source = resolve_source(model or None)
    initial = first_screen_info(source)
    worker = ManagedWorker(WorkerOptions(model=model or None))
    worker.start(wait=initial is None)  # as `llm-internals MODEL` does
    from benchmarks.explorer_session import tree_drawn
    try:
        async with tree_drawn(worker, initial) as (app, pilot):
            interactive = time.perf_counter() - t0
            while app.info_provisional:
                await asyncio.sleep(0.005)
            await pilot.pause()
            exact = time.perf_counter() - t0
            try:
                await app.workers.wait_for_complete()
            except Exception:  # a superseded request (WorkerCancelled) is not a failure here
                pass
            return interactive, exact
    finally:
        worker.close()

print(*asyncio.run(main()))
"""


def open_seconds(mode: str, model: str, cache: Path) -> tuple[float, float]:
    """(seconds to an interactive tree, seconds to the exact transformers tree) for one fresh process."""
    env = {**os.environ, "LLM_INTERNALS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _OPEN_SCRIPT.format(root=str(ROOT)), mode, model],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    interactive, exact = out.stdout.strip().splitlines()[-1].split()
    return float(interactive), float(exact)


def model_folder(layers: int | None, cache_dir: Path = common.DEFAULT_CACHE) -> Path:
    """A folder (in this checkout's benchmarks/.cache) with the reference config and a link to a synthetic bf16
    checkpoint in `cache_dir` (shared with bench_stats; written there once when missing)."""
    path, _, _ = common.synthetic_checkpoint(common.REFERENCE_CONFIG, layers=layers, cache_dir=cache_dir)
    folder = common.DEFAULT_CACHE / (path.stem + "-folder")
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(common.REFERENCE_CONFIG.read_text())
    if layers is not None:
        cfg["num_hidden_layers"] = layers
    (folder / "config.json").write_text(json.dumps(cfg))
    link = folder / "model.safetensors"
    if link.is_symlink() and link.resolve() != path.resolve():
        link.unlink()  # made for another cache folder
    if not link.exists():
        link.symlink_to(path.resolve())
    return folder


def bench_open(model: str, repeats: int) -> dict:
    """First open (empty caches: the provisional tree from headers, then the exact one) and second open."""
    cold, warm = [], []
    for _ in range(repeats):
        cache = Path(tempfile.mkdtemp(prefix="llmi-bench-cache-"))
        try:
            cold.append(open_seconds("explorer", model, cache))
            warm.append(open_seconds("explorer", model, cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return {
        "first_open_s": min(c[0] for c in cold), "first_open_exact_tree_s": min(c[1] for c in cold),
        "first_open_runs": cold,
        "second_open_s": min(w[0] for w in warm), "second_open_exact_tree_s": min(w[1] for w in warm),
        "second_open_runs": warm,
    }


def bench_stats_cache(model: str) -> dict:
    from internals.model import open_model

    cache = Path(tempfile.mkdtemp(prefix="llmi-bench-stats-"))
    os.environ["LLM_INTERNALS_CACHE"] = str(cache)
    try:
        opened = open_model(model)
        names = opened.tensor_names()
        t0 = time.perf_counter()
        list(opened.iter_stats(names))
        compute = time.perf_counter() - t0
        opened.stats_cache.forget_loaded()  # what a new process sees: only the files on disk
        t0 = time.perf_counter()
        list(opened.iter_stats(names))
        cached = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"tensors": len(names), "compute_s": compute, "from_cache_s": cached, "speedup": compute / cached}


async def _press_times(app, keys: list[str]) -> list[float | None]:
    """Per key: seconds from the key press to the first frame the compositor produces after it (None when
    the press drew nothing)."""
    from textual.widgets import Tree

    frames: list[float] = []
    display = app._display

    def record(screen, renderable):
        if renderable is not None:
            frames.append(time.perf_counter())
        return display(screen, renderable)

    app._display = record
    times = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        while not getattr(app, "all_views_mounted", True):  # views mount in idle time after the first frame
            await asyncio.sleep(0.02)
        timer = getattr(app, "status_timer", None)
        if timer is not None:  # a status poll's own frame would be taken for a keypress's
            timer.stop()
        tree = app.query_one(Tree)
        tree.root.expand_all()  # every arrow press moves the cursor (and so must redraw)
        tree.move_cursor(tree.root)
        await pilot.pause()
        for key in keys:
            t0 = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            after = [f for f in frames if f > t0]
            times.append(after[0] - t0 if after else None)
            await app.workers.wait_for_complete()
            await pilot.pause()
    return times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_keys(model: str) -> dict:
    from textual.app import App
    from textual.widgets import Tree

    from internals.worker.spawn import ManagedWorker, WorkerOptions
    from tui.app import ExplorerApp

    class Trivial(App):
        def compose(self):
            tree = Tree("root")
            for i in range(60):
                tree.root.add_leaf(f"leaf {i}")
            tree.root.expand()
            yield tree

    baseline = asyncio.run(_press_times(Trivial(), ["down"] * 50))
    # as `llm-internals MODEL` runs: the model in its own worker process (in-process, a forward pass in a
    # thread would hold the GIL and be counted against the UI)
    client = ManagedWorker(WorkerOptions(model=model))
    client.start(wait=True)
    try:
        tree_keys = ["down"] * 50 + ["up"] * 10
        explorer_tree = asyncio.run(_press_times(ExplorerApp(client, model_label="bench", tune_gc=True), tree_keys))
        # The first display of a view applies its styles and builds its plots (once per session): measured
        # apart, then switching back and forth.
        first = {"3": "attention", "4": "tokens", "5": "lens", "2": "cross-layer", "1": "summary"}
        view_keys = ["1", "3", "1", "4", "1", "5", "2"] * 6
        times = asyncio.run(_press_times(ExplorerApp(client, model_label="bench", tune_gc=True), [*first, *view_keys]))
        first_visits = dict(zip(first.values(), times[:len(first)]))
        explorer_views = times[len(first):]
    finally:
        client.close()
    # "for a 100-layer model it stays smooth": the reference config at 100 layers (~1,200 nodes, all expanded)
    folder = Path(tempfile.mkdtemp(prefix="llmi-bench-100-"))
    config = json.loads(common.REFERENCE_CONFIG.read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 100}))
    client_100 = ManagedWorker(WorkerOptions(model=str(folder / "config.json")))
    client_100.start(wait=True)
    try:
        tree_100 = asyncio.run(
            _press_times(
                ExplorerApp(client_100, model_label="bench", tune_gc=True), ["down"] * 50 + ["end"] + ["up"] * 10 + ["home"]
            )
        )
    finally:
        client_100.close()
        shutil.rmtree(folder, ignore_errors=True)
    out = {"explorer_first_display_ms": {k: None if v is None else 1000 * v for k, v in first_visits.items()},
           "torch_in_this_process": "torch" in sys.modules}  # False, as in the real explorer process
    for name, values in (("trivial_app_tree", baseline), ("explorer_tree", explorer_tree),
                         ("explorer_tree_100_layers", tree_100), ("explorer_switch_views", explorer_views)):
        values = [v for v in values if v is not None]
        out[name] = {"p50_ms": 1000 * statistics.median(values), "p95_ms": 1000 * _pct(values, 0.95), "presses": len(values)}
    return out


def keys_in_fresh_process(model: str) -> dict:
    """bench_keys in a process that, like `llm-internals`, never imports torch (whose heap would make the
    UI's garbage collections slower than they are in real use)."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from benchmarks.bench_explorer import bench_keys; print(json.dumps(bench_keys({model!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=None, help="layers of the synthetic 1.5B-shaped checkpoint (default: all 28)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    big = model_folder(args.layers)
    from internals.demo_path import demo_model_path

    demo = str(demo_model_path()) if (demo_model_path() / "model.safetensors").exists() else None
    report: dict = {"benchmark": "explorer", "machine": common.machine(), "model_1_5b_shapes": str(big), "demo_model": demo}
    base_cache = Path(tempfile.mkdtemp(prefix="llmi-bench-base-"))
    report["baseline_textual_app_s"] = min(open_seconds("baseline", "", base_cache)[0] for _ in range(args.repeats))
    report["open_1_5b"] = bench_open(str(big), args.repeats)
    if demo:
        report["open_demo"] = bench_open(demo, args.repeats)
    report["stats_cache_1_5b"] = bench_stats_cache(str(big))
    report["keys"] = keys_in_fresh_process(demo or str(big))
    opens = [report["open_1_5b"]] + ([report["open_demo"]] if demo else [])
    report["targets"] = {
        "interactive_tree_first_open_s": common.target(max(o["first_open_s"] for o in opens), 1.5, "<="),
        "interactive_tree_second_open_s": common.target(max(o["second_open_s"] for o in opens), 1.5, "<="),
        "whole_model_stats_from_cache_s": common.target(report["stats_cache_1_5b"]["from_cache_s"], 0.2, "<="),
        "keypress_to_frame_p95_ms": common.target(
            max(report["keys"][k]["p95_ms"] for k in ("explorer_tree", "explorer_tree_100_layers", "explorer_switch_views")),
            50.0,
            "<=",
        ),
    }
    report["ratios"] = {
        "first_open_vs_bare_textual_app": report["open_1_5b"]["first_open_s"] / report["baseline_textual_app_s"],
        "second_open_vs_bare_textual_app": report["open_1_5b"]["second_open_s"] / report["baseline_textual_app_s"],
        "tree_key_p50_vs_trivial_app": report["keys"]["explorer_tree"]["p50_ms"] / report["keys"]["trivial_app_tree"]["p50_ms"],
    }
    common.write_report(report, "explorer")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The operation registry: checked parameters (a typed error, never a traceback), typed errors on both sides of
a real socket, a new operation in a few lines, the demo registry filled by the lessons through the composition root."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from internals.errors import (
    BadRequest,
    Cancelled,
    InternalError,
    ModelRefused,
    OutOfMemory,
    UnknownOperation,
    UserError,
    WorkerCrashed,
    from_wire,
    to_wire,
)
from internals.worker.client import InProcessClient
from internals.worker.contract import NoParams
from internals.worker.operations import OPERATIONS, OpContext, operation, registry
from internals.worker.spawn import ManagedWorker, WorkerOptions


def _service(folder):
    from internals.model import open_model
    from internals.worker.service import ModelService

    return ModelService(open_model(str(folder)))


@pytest.fixture(scope="module")
def client(tiny_models):
    c = InProcessClient(_service(tiny_models("llama")))
    yield c
    c.close()


@pytest.mark.parametrize("op, params, words", [
    ("attention", {"prompt": 123}, "prompt must be a string, not int"),
    ("attention", {"prompt": "hi", "layer": "0"}, "layer must be an integer"),
    ("attention", {"prompt": "hi", "layer": True}, "layer must be an integer"),
    ("attention", {"prompt": "hi", "bins": 2.5}, "bins must be an integer or null"),
    ("attention", {"layer": 0}, "needs the parameter 'prompt'"),
    ("attention", {"prompt": "hi", "layers": 0}, "has no parameter 'layers'"),
    ("tensor_stats", {"name": ["a"]}, "name must be a string"),
    ("run_demo", {"name": "lora", "params": [1]}, "params must be an object"),
    ("generate", {"prompt": "x", "temperature": "hot"}, "temperature must be a number"),
])
def test_bad_parameters_are_a_typed_error(client, op, params, words):
    with pytest.raises(BadRequest) as err:
        client.call(op, params)
    assert words in str(err.value) and err.value.kind == "BadRequest"


def test_an_int_is_a_valid_float_and_defaults_apply(client):
    items = list(client.stream("generate", {"prompt": "hello", "max_new_tokens": 2, "temperature": 0}))
    assert len(items) == 2 and all(isinstance(i["token_id"], int) for i in items)


def test_unknown_operation_and_non_object_parameters(client):
    with pytest.raises(UnknownOperation, match="unknown operation 'no_such_op'.*attention"):
        client.call("no_such_op")
    frames = []
    client.service.handle({"id": 3, "method": "summary"}, [1, 2], lambda h, b: frames.append((h, b)))
    assert frames == [({"id": 3, "kind": "error"}, {"type": "BadRequest",
                                                    "message": "summary: the parameters must be an object, not list"})]


def test_every_registered_operation_declares_its_seam():
    import dataclasses

    ops = registry()
    assert {"summary", "tree", "tensor_stats", "matrix_preview", "cross_layer", "attention", "lens", "generate",
            "run_demo", "status", "load", "ping"} <= set(ops)
    for op in ops.values():
        assert dataclasses.is_dataclass(op.request) and op.result is not None and op.doc, op.name
        assert op.streams == (op.item is not None), op.name
        if op.compute_lock and op.name != "run_demo":
            assert op.needs_model, op.name


def test_a_new_operation_is_a_few_lines_and_typed_end_to_end(client):
    @dataclass(frozen=True)
    class ScaleRequest:
        name: str
        factor: float = 2.0

    @operation("test_scaled_norm", request=ScaleRequest, result=dict, group="test")
    def scaled_norm(ctx: OpContext, req: ScaleRequest) -> dict:
        """The Frobenius norm of a stored tensor, scaled."""
        stats = ctx.opened.tensor_stats(req.name)
        return {"value": stats["l2_norm"] * req.factor}

    try:
        name = "model.layers.0.mlp.up_proj.weight"
        result = client.call(OPERATIONS["test_scaled_norm"], {"name": name, "factor": 3})
        assert result["value"] == pytest.approx(3 * client.tensor_stats(name)["l2_norm"])
        with pytest.raises(BadRequest, match="factor must be a number"):
            client.call("test_scaled_norm", {"name": name, "factor": "x"})
    finally:
        OPERATIONS.pop("test_scaled_norm")


def test_out_of_memory_and_bugs_are_typed_and_the_service_keeps_serving(client):
    import torch

    @operation("test_oom", request=NoParams, result=dict, needs_model=True, compute_lock=True)
    def oom(ctx: OpContext, req: NoParams) -> dict:
        """Allocates too much."""
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    @operation("test_bug", request=NoParams, result=dict)
    def bug(ctx: OpContext, req: NoParams) -> dict:
        """Has a bug."""
        return {}["missing"]

    try:
        with pytest.raises(OutOfMemory, match="out of GPU memory: try a shorter prompt"):
            client.call("test_oom")
        with pytest.raises(InternalError, match="test_bug failed: KeyError"):
            client.call("test_bug")
        assert not client.service.compute_lock.locked()
        assert client.next_tokens("hello", k=3)["ids"]
    finally:
        OPERATIONS.pop("test_oom")
        OPERATIONS.pop("test_bug")


def test_wire_errors_round_trip_as_their_own_classes():
    for exc in (BadRequest("b"), UnknownOperation("u"), OutOfMemory("o"), InternalError("i"), Cancelled()):
        back = from_wire(to_wire(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
    unknown = from_wire({"type": "SomethingNew", "message": "m"})
    assert isinstance(unknown, UserError) and unknown.kind == "SomethingNew" and str(unknown) == "m"


@pytest.fixture(scope="module")
def worker(tiny_models):
    w = ManagedWorker(WorkerOptions(model=str(tiny_models("llama")), entry_module="llm_internals"))
    w.start()
    yield w
    w.close()


def test_typed_errors_across_a_real_socket(worker):
    with pytest.raises(BadRequest, match="prompt must be a string"):
        worker.attention(123, 0)  # type: ignore[arg-type]
    with pytest.raises(UnknownOperation):
        worker.call("nope")
    with pytest.raises(UserError) as err:
        worker.tensor_stats("no.such.tensor")
    assert type(err.value) is UserError and "no tensor named" in str(err.value)  # the worker raised a UserError
    assert worker.attention("hello world", 0)["weights"].shape[0] > 0  # still serving


def test_the_worker_started_through_the_composition_root_has_the_lessons_demos(worker):
    from lessons.demos import DEMOS

    with pytest.raises(UserError) as err:
        list(worker.run_demo("no-such-demo"))
    assert all(name in str(err.value) for name in DEMOS), str(err.value)
    with pytest.raises(UserError, match="has no parameter 'stepz'"):
        list(worker.run_demo("pretrain", {"stepz": 1}))  # reached the lessons' own parameter check


def test_a_worker_of_the_engine_alone_has_no_demos(tiny_models):
    w = ManagedWorker(WorkerOptions(model=str(tiny_models("llama"))))
    try:
        w.start()
        with pytest.raises(UserError, match="no demos are registered"):
            list(w.run_demo("pretrain"))
    finally:
        w.close()


def test_demo_registry_runs_what_was_registered(client):
    from internals.worker import demos

    def count(opened, params, emit, progress, should_stop):
        for i in range(params.get("n", 3)):
            emit({"series": "count", "x": i, "y": float(i * i)})
        progress(1.0, "done")
        return {"demo": "test-count", "layers": opened.summary()["num_layers"]}

    demos.register("test-count", count, {"title": "Count"})
    try:
        items = list(client.run_demo("test-count", {"n": 4}))
        assert [p["y"] for p in items[:-1]] == [0.0, 1.0, 4.0, 9.0]
        assert items[-1]["result"] == {"demo": "test-count", "layers": client.summary()["num_layers"]}
        assert demos.registered()["test-count"].metadata == {"title": "Count"}
    finally:
        demos.unregister("test-count")
    with pytest.raises(UserError, match="unknown demo 'test-count'"):
        list(client.run_demo("test-count"))


def test_lessons_fill_the_demo_registry():
    from internals.worker.demos import registered
    from lessons.demos import DEMOS
    from lessons.demos.registry import register_demos

    register_demos()
    assert set(DEMOS) <= set(registered())
    assert registered()["lora"].metadata["title"] == DEMOS["lora"].title


def test_a_refused_model_is_a_model_refused_error(tmp_path):
    import json

    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-arch-xyz"}))
    w = ManagedWorker(WorkerOptions(model=str(folder)))
    try:
        with pytest.raises(ModelRefused) as err:
            w.start()
        assert isinstance(err.value, WorkerCrashed) and "unknown architecture" in str(err.value)
        assert not str(err.value).startswith("error")
    finally:
        w.close()


def test_matrix_preview_and_attention_bins_use_the_engine_block_reduction(client):
    from internals.reduce import block_edges, block_means

    maps = client.attention("the cat sat on the mat and the dog", 0)
    binned = client.attention("the cat sat on the mat and the dog", 0, bins=3)
    edges = binned["bin_edges"]
    expect = np.stack([block_means(lambda a, b, h=h: maps["weights"][h, a:b], edges, edges, sum_cols=True)
                       for h in range(maps["num_heads"])])
    assert np.allclose(binned["weights"], expect, atol=1e-6)
    assert np.allclose(binned["weights"].sum(-1), 1.0, atol=1e-5)
    assert edges == block_edges(maps["num_tokens"], 3)

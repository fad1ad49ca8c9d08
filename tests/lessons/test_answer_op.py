"""The exercises' model answers through the worker: the lessons register `exercise-answer` in the worker's demo
registry (the engine never imports lessons) and the explorer runs it like a demo, through the client."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from internals.demo_path import demo_model_path
from internals.errors import UserError
from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from lessons.answer_op import EXERCISE_ANSWER, live_answer_from_result
from lessons.catalog import all_exercises
from lessons.exercises import check_answer


def _excess_kurtosis(w) -> float:
    x = w.double().reshape(-1)
    c = x - x.mean()
    return float((c ** 4).mean() / (c ** 2).mean() ** 2 - 3)


def test_a_model_answer_runs_in_the_worker_and_matches_the_weights():
    import lessons.demos  # noqa: F401 - registers the demos and the exercise-answer op, as llm_internals does

    client = InProcessClient(ModelService(open_model(str(demo_model_path()))))
    try:
        items = list(client.run_demo(EXERCISE_ANSWER, {"exercise": "quantization-kurtosis"}))
        result = items[-1]["result"]
        weights = load_file(demo_model_path() / "model.safetensors")
        comps = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                 "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
        kurt = {c: _excess_kurtosis(weights[f"model.layers.0.{m}.weight"]) for c, m in comps.items()}
        assert result["exercise"] == "quantization-kurtosis" and result["value"] == max(kurt, key=kurt.get)
        exercise = next(ex for ex in all_exercises() if ex.id == "quantization-kurtosis")
        assert check_answer(exercise, result["value"], live_answer_from_result(result)).correct
        with pytest.raises(UserError, match="unknown exercise"):
            list(client.run_demo(EXERCISE_ANSWER, {"exercise": "no-such-exercise"}))
    finally:
        client.close()

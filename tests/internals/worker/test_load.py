"""Load: 8 clients on one real worker process, each sending 50 mixed requests (statistics, attention, lens,
a generation) from its own thread while another client generates all along; some requests are replaced by a
newer one of the same group. Every request is answered with its own answer (the attention's layer and
tokens, the tensor's name, the lens's prompt) or cancelled because a newer one replaced it; none is lost. The
latency of the short requests while the generation runs is printed and written to
benchmarks/out/load_test.json (the README's "Load, faults and hostile input" cites it)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tests_helpers import REPO

from internals.errors import Cancelled
from internals.worker.client import SocketClient
from internals.worker.spawn import ManagedWorker, WorkerOptions

pytestmark = pytest.mark.slow

CLIENTS, REQUESTS, DEADLINE_S = 8, 50, 90.0
PROMPTS = ["def f(x):", "import os", "class A:\n    pass", "for i in range(3):", "return x + 1"]


def test_eight_clients_fifty_mixed_requests_each(tiny_models):
    from internals.model import open_model

    folder = tiny_models("llama-long")
    names = [e.name for e in open_model(str(folder)).store]
    worker = ManagedWorker(WorkerOptions(model=str(folder)))
    worker.start()
    worker.load()
    tokens = {p: worker.tokenize(p)["labels"] for p in PROMPTS}
    stop_background = threading.Event()
    background = {"tokens": 0}

    def generate_all_along():  # the generation the short requests run beside
        gen = SocketClient(worker.socket_path)
        try:
            while not stop_background.is_set():
                for _ in gen.generate("def", max_new_tokens=2000, group="background"):
                    background["tokens"] += 1
                    if stop_background.is_set():
                        break
        finally:
            gen.close()

    bg = threading.Thread(target=generate_all_along, daemon=True)
    bg.start()
    while background["tokens"] == 0:
        time.sleep(0.05)
    latencies: list[tuple[str, float]] = []
    outcomes = {"answered": 0, "cancelled": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def check(kind: str, args: dict, answer: dict) -> None:
        if kind == "stats":
            assert answer["name"] == args["name"] and len(answer["histogram"]["counts"]) == args["bins"]
        elif kind == "attention":
            assert answer["layer"] == args["layer"] and answer["tokens"] == tokens[args["prompt"]]
        elif kind == "lens":
            assert answer["tokens"] == tokens[args["prompt"]] and answer["top_k"] == args["top_k"]

    def one(client: SocketClient, kind: str, args: dict, group: str | None) -> None:
        start = time.perf_counter()
        try:
            if kind == "stats":
                answer = client.tensor_stats(args["name"], bins=args["bins"], group=group)
            elif kind == "attention":
                answer = client.attention(args["prompt"], layer=args["layer"], group=group)
            elif kind == "lens":
                answer = client.lens(args["prompt"], top_k=args["top_k"], group=group)
            else:
                answer = {"items": list(client.generate(args["prompt"], max_new_tokens=args["n"], group=group))}
                assert len(answer["items"]) == args["n"]
            check(kind, args, answer)
        except Cancelled:
            if group is None or not args.get("replaced"):
                failures.append(f"{kind} {args} cancelled though nothing replaced it")
            with lock:
                outcomes["cancelled"] += 1
            return
        except Exception as exc:  # noqa: BLE001 - collected, reported below
            failures.append(f"{kind} {args}: {type(exc).__name__}: {exc}")
            return
        with lock:
            outcomes["answered"] += 1
            if kind != "generate":
                latencies.append((kind, time.perf_counter() - start))

    def client_run(index: int) -> None:
        rng = random.Random(index)
        client = SocketClient(worker.socket_path)
        try:
            for i in range(REQUESTS):
                kind = "generate" if i == REQUESTS // 2 else rng.choice(["stats", "attention", "lens"])
                args = {"prompt": rng.choice(PROMPTS), "layer": rng.randrange(2), "top_k": rng.randint(1, 5),
                        "name": rng.choice(names), "bins": rng.choice([8, 16, 64]), "n": 16}
                if kind != "generate" and i % 10 == 3:  # replaced at once by a newer request of its group
                    args["replaced"] = True
                    older = threading.Thread(target=one, args=(client, kind, args, f"g{index}"))
                    older.start()
                    newer = {**args, "replaced": False}
                    one(client, kind, newer, f"g{index}")
                    older.join(30)
                else:
                    one(client, kind, args, None if kind != "generate" else "generate")
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, DEADLINE_S - (time.perf_counter() - started)))
    elapsed = time.perf_counter() - started
    stop_background.set()
    bg.join(10)
    try:
        assert not any(t.is_alive() for t in threads), f"clients still running after {DEADLINE_S} s"
        assert not failures, failures[:5]
        replaced = CLIENTS * sum(1 for i in range(REQUESTS) if i % 10 == 3 and i != REQUESTS // 2)
        assert outcomes["answered"] + outcomes["cancelled"] == CLIENTS * REQUESTS + replaced
        assert outcomes["cancelled"] <= replaced
        assert worker.status()["pid"] == worker.proc.pid  # the worker survived
        assert background["tokens"] > 0
    finally:
        worker.close()
    short = np.array([s for _, s in latencies]) * 1000
    report = {"clients": CLIENTS, "requests_per_client": REQUESTS, "answered": outcomes["answered"],
              "cancelled": outcomes["cancelled"], "elapsed_s": round(elapsed, 2),
              "short_requests": len(short), "p50_ms": round(float(np.percentile(short, 50)), 1),
              "p95_ms": round(float(np.percentile(short, 95)), 1), "max_ms": round(float(short.max()), 1),
              "background_tokens": background["tokens"], "cpu_count": os.cpu_count(),
              "model": "tests/conftest.py llama-long (2 layers, hidden 32)", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print("\nload test:", json.dumps(report))
    out = Path(REPO) / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "load_test.jsonl", "a") as fh:
        fh.write(json.dumps(report) + "\n")

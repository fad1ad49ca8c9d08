"""The stages of `scripts/gpu-check`, one subcommand each: `python scripts/gpu_check.py STAGE`.

Each check appends one JSON object to $OUT/results.jsonl: {"stage", "check", "ok", ...numbers}. `ok` is true,
false, or null when the check could not run here (a missing optional package, a CPU-only dry run). The
driver (`scripts/gpu-check`) sets up the environment, the time budget and runs these in order; with DRY_RUN=1
every stage runs on the CPU with the bundled demo model and tiny sizes, so the script itself is tested
without a GPU. Nothing here re-implements the engine: it calls the same functions, worker and CLI a user does.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("OUT", "/tmp/llmi-gpu-out"))
DRY = os.environ.get("DRY_RUN", "0") == "1"
MODEL = os.environ.get("MODEL", str(ROOT / "internals" / "demo_model") if DRY else "/tmp/llmi-model-1p5b")
STAGE = "?"
RUN = Path(os.environ.get("LLMI_RUN", "/tmp/llmi-run"))  # this run's sockets and the pids of its workers
#: The packages the GPU image must already have (gpu-prepare does not carry them: too large).
IMAGE_PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "tokenizers", "numpy")
#: The packages scripts/gpu-prepare brings as wheels when the image lacks them.
WHEEL_PACKAGES = ("textual", "textual_plotext", "plotext", "rich", "psutil", "numba", "pytest", "peft", "trl")
#: Prompt lengths (tokens) for the long-prompt checks: the 4k and 16k of the brief, or tiny in a dry run.
LONG_PROMPTS = (64, 256) if DRY else (4096, 16384)


# --- recording ------------------------------------------------------------------------------------------
def rec(check: str, ok: bool | None, **values: Any) -> dict[str, Any]:
    """Append one result line (and echo it to the log)."""
    line = {"stage": STAGE, "check": check, "ok": ok, **values}
    text = json.dumps(line, default=_jsonable)
    print(text, flush=True)
    with open(OUT / "results.jsonl", "a") as fh:
        fh.write(text + "\n")
    return line


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def guarded(check: str, fn, *args, **kwargs) -> Any:
    """Run one check; an unexpected exception is recorded as a failed check instead of ending the stage."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure is a result to record
        rec(check, False, error=f"{type(exc).__name__}: {exc}"[:500], trace=traceback.format_exc()[-1500:])
        return None


def gib(n: float | int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def cli_command() -> list[str]:
    """The console script of the check's venv (either entry point layout), or the module as a fallback."""
    exe = Path(sys.executable).parent / "llm-internals"
    if exe.exists():
        return [str(exe)]
    module = "llm_internals" if (ROOT / "llm_internals.py").exists() else "internals.cli"
    return [sys.executable, "-m", module]


# --- prompts ---------------------------------------------------------------------------------------------
def source_text(min_chars: int) -> str:
    """Python standard-library source (real text, like the explorer's users paste), at least min_chars long."""
    parts, size = [], 0
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py"))):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
        if size >= min_chars:
            break
    return "".join(parts)


def prompt_ids(tokenizer: Any, tokens: int) -> list[int]:
    ids: list[int] = []
    chars = tokens * 6
    while len(ids) < tokens:
        ids = tokenizer(source_text(chars), add_special_tokens=False)["input_ids"]
        chars *= 2
    return ids[:tokens]


def prompt_text(tokenizer: Any, tokens: int) -> str:
    return tokenizer.decode(prompt_ids(tokenizer, tokens))


# --- env -------------------------------------------------------------------------------------------------
def stage_env() -> int:
    """Versions, GPU, bf16 support and free memory; what is missing. Exit 3 when the other stages cannot run."""
    versions, missing = {}, []
    from importlib import metadata, util

    for name in IMAGE_PACKAGES + WHEEL_PACKAGES:  # found, not imported (trl alone takes seconds to import)
        try:
            found = util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            try:
                versions[name] = metadata.version(name.replace("_", "-"))
            except metadata.PackageNotFoundError:
                versions[name] = "?"
        else:
            versions[name] = None
            missing.append(name)
            rec(f"import:{name}", False if name in IMAGE_PACKAGES else None, error="not importable")
    fatal = [m for m in missing if m in IMAGE_PACKAGES]
    for name, major in (("transformers", 5), ("torch", 2)):  # pyproject: transformers>=5, torch>=2.4
        version = versions.get(name)
        if version and version != "?" and int(version.split(".")[0]) < major:
            rec(f"version:{name}", False, version=version, needs=f">={major}")
            fatal.append(name)
    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True) if _which("nvidia-smi") else None
    if smi is not None:
        (OUT / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
    info: dict[str, Any] = dict(python=sys.version.split()[0], executable=sys.executable, versions=versions,
                                nvidia_smi=smi is not None and smi.returncode == 0, dry_run=DRY, model=MODEL)
    cuda = False
    if "torch" not in missing:
        import torch

        cuda = torch.cuda.is_available()
        info.update(torch_cuda=torch.version.cuda, cuda_available=cuda, cuda_visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
        if cuda:
            free, total = torch.cuda.mem_get_info()
            info.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                        bf16=torch.cuda.is_bf16_supported(), free_gib=gib(free), total_gib=gib(total),
                        gpus=torch.cuda.device_count())
    ok = not fatal and (cuda or DRY)
    rec("environment", ok, missing=missing, **info)
    return 0 if ok else 3


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


# --- build -----------------------------------------------------------------------------------------------
def stage_build() -> int:
    """A random-weight checkpoint with DeepSeek-R1-Distill-Qwen-1.5B's exact shapes, built on the GPU (bf16)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(MODEL)
    if (out / "model.safetensors").exists() or (out / "model.safetensors.index.json").exists():
        rec("build", True, reused=str(out))
        return 0
    t0 = time.perf_counter()
    config_file = os.environ.get("BUILD_CONFIG") or ROOT / "tests" / "data" / "deepseek-r1-distill-qwen-1.5b.config.json"
    cfg = json.loads(Path(config_file).read_text())
    model_type = cfg.pop("model_type")
    for key in ("torch_dtype", "transformers_version", "architectures"):
        cfg.pop(key, None)
    # The bundled demo model's tokenizer: a real byte-level BPE (built with `tokenizers` by
    # internals/demo_model_training), 4096 ids, all inside the 151936-row vocabulary; no training needed here.
    demo = ROOT / "internals" / "demo_model"
    tok = AutoTokenizer.from_pretrained(str(demo))
    cfg["bos_token_id"] = cfg["eos_token_id"] = tok.eos_token_id
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():  # peaked attention (a random init attends ~uniformly) and decisive next-token logits
        for layer in model.model.layers:  # (std 0.02 gives logits of std ~0.8: top-1 and top-2 nearly tied)
            layer.self_attn.q_proj.weight.mul_(3.0)
            layer.self_attn.k_proj.weight.mul_(3.0)
        model.lm_head.weight.mul_(4.0)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo / name, tmp / name)
    params = sum(p.numel() for p in model.parameters())
    del model
    tmp.rename(out)
    rec("build", True, seconds=round(time.perf_counter() - t0, 1), params=params, folder=str(out),
        files=sorted(os.listdir(out)))
    return 0


# --- inproc ----------------------------------------------------------------------------------------------
def stage_inproc() -> int:
    """The engine functions in one process on CUDA bf16, against an fp32 eager reference on the CPU."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from internals.inference.attention import attention_for_layer
    from internals.inference.generation import generate_stream
    from internals.inference.lens import logit_lens
    from internals.inference.loading import Loaded, load_for_inference
    from internals.sources import resolve_source

    cuda = torch.cuda.is_available()
    source = resolve_source(MODEL)
    t0 = time.perf_counter()
    loaded = load_for_inference(source)  # the defaults: what a user gets
    load_s = time.perf_counter() - t0
    model, tok = loaded.model, loaded.tokenizer
    layers = model.config.num_hidden_layers
    want = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    rec("load_defaults", (loaded.device.type, loaded.dtype) == want, device=str(loaded.device),
        dtype=str(loaded.dtype), attn=getattr(model.config, "_attn_implementation", None), seconds=round(load_s, 2),
        gpu_alloc_gib=gib(torch.cuda.memory_allocated()) if cuda else None)

    ids = prompt_ids(tok, 96)
    t0 = time.perf_counter()
    ref = AutoModelForCausalLM.from_pretrained(str(source.config_path.parent), dtype=torch.float32,
                                               attn_implementation="eager").eval()
    with torch.no_grad():
        ref_attn = ref(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    ref_s = time.perf_counter() - t0
    # bf16 keeps 8 significant bits: queries and keys alone move probabilities by ~1e-2 (tests/internals/
    # inference/test_inference_cuda.py); fp32 against fp32 agrees to 1e-4
    tolerance = 5e-2 if cuda else 1e-4
    for layer in sorted({0, layers // 2, layers - 1}):
        def attention_check(layer=layer):
            ours = attention_for_layer(loaded, ids, layer)
            w, r = np.asarray(ours["weights"]), ref_attn[layer][0].numpy()
            diff = float(np.abs(w - r).max())
            rec("attention_vs_fp32_eager", diff < tolerance, layer=layer, max_abs_diff=diff, tolerance=tolerance,
                shape=list(w.shape), rowsum_err=float(np.abs(w.sum(-1) - 1).max()),
                above_diagonal=float(np.abs(np.triu(w, 1)).max()), reference_seconds=round(ref_s, 1))
        guarded("attention_vs_fp32_eager", attention_check)

    def lens_check():
        ours = logit_lens(loaded, ids, top_k=2)
        theirs = logit_lens(Loaded(model=ref, tokenizer=tok, device=torch.device("cpu"), dtype=torch.float32),
                            ids, top_k=2)
        # where the fp32 reference is decisive (top-1 beats top-2 by a margin bf16 rounding cannot close),
        # the bf16 lens must pick the same token
        decisive = agree = total_same = total = 0
        for a, b in zip(ours["layers"], theirs["layers"]):
            for ia, ib, pb in zip(a["top_ids"], b["top_ids"], b["top_probs"]):
                total += 1
                total_same += ia[0] == ib[0]
                if np.log(pb[0]) - np.log(pb[1]) > 0.2:  # far beyond bf16 rounding of the logits
                    decisive += 1
                    agree += ia[0] == ib[0]
        with torch.no_grad():
            own = model(input_ids=torch.tensor([ids], device=loaded.device)).logits[0].float().softmax(-1)
        own_top = own.topk(2, -1).indices.cpu().tolist()
        rate = agree / decisive if decisive else None
        enough = decisive >= len(ids)  # at least one layer's worth of positions: the check is not vacuous
        rec("lens_top1_vs_fp32", enough and rate >= 0.99 and ours["layers"][-1]["top_ids"] == own_top,
            decisive_positions=decisive, decisive_agreement=rate, all_agreement=total_same / max(1, total),
            last_layer_is_model_output=ours["layers"][-1]["top_ids"] == own_top)
    guarded("lens_top1_vs_fp32", lens_check)
    del ref, ref_attn

    def generation_check():
        prompt = prompt_ids(tok, 512 if cuda else 32)
        new = 64 if cuda else 8
        t0 = time.perf_counter()
        first, got = None, []
        for item in generate_stream(loaded, prompt, new):
            if first is None:
                first = time.perf_counter() - t0
            got.append(int(item["token_id"]))
        total_s = time.perf_counter() - t0
        with torch.no_grad():
            hf = model.generate(torch.tensor([prompt], device=loaded.device), max_new_tokens=len(got),
                                do_sample=False, pad_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
        same = next((i for i, (a, b) in enumerate(zip(got, hf)) if a != b), min(len(got), len(hf)))
        rec("generation", len(got) > 0 and same >= min(8, len(got)), prompt_tokens=len(prompt), new_tokens=len(got),
            ttft_s=round(first or 0.0, 3),
            tokens_per_s=round((len(got) - 1) / max(1e-9, total_s - (first or 0.0)), 1),
            same_as_hf_generate_prefix=same)
    guarded("generation", generation_check)
    return 0


# --- worker ----------------------------------------------------------------------------------------------
class MemorySampler:
    """Peak memory while a request runs: GPU memory used (nvidia-smi, device-wide) or the worker's RSS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.gpu = _which("nvidia-smi") and not DRY
        self.peak = self.before = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> int:
        if self.gpu:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            return int(out.splitlines()[0]) * 2**20 if out else 0
        import psutil

        return psutil.Process(self.pid).memory_info().rss

    def __enter__(self) -> MemorySampler:
        self.before = self.peak = self.read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.read())
            except Exception:  # noqa: BLE001 - the worker may be gone
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)
        try:
            self.peak = max(self.peak, self.read())
        except Exception:  # noqa: BLE001
            pass

    @property
    def label(self) -> str:
        return "peak_gpu_used_gib" if self.gpu else "peak_worker_rss_gib"


def start_worker(label: str, extra: list[str], wrapper: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    sock = str(RUN / f"{label}.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    device = "cpu" if DRY else "cuda"
    cmd = (wrapper or cli_command()) + ["worker", MODEL, "--socket", sock, "--log", str(OUT / f"{label}.log")]
    if "--max-memory" not in extra:
        cmd += ["--device", device]
    proc = subprocess.Popen(cmd + extra, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(RUN / "pids", "a") as fh:
        fh.write(f"{proc.pid}\n")
    return proc, sock


def connect(proc: subprocess.Popen, sock: str, timeout: float = 180.0):
    from internals.worker.client import SocketClient, WorkerCrashed

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with status {proc.returncode}")
        if os.path.exists(sock):
            try:
                return SocketClient(sock)
            except WorkerCrashed:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not open {sock} within {timeout:.0f} s")


def stop_worker(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def remote_error(exc: BaseException) -> str:
    return str(getattr(exc, "kind", None) or type(exc).__name__)


def client_checks(client: Any, proc: subprocess.Popen, label: str) -> dict[str, Any]:
    """Status, long prompts through lens and binned attention with peak memory, generation; returns references."""
    import numpy as np
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    client.load()
    status = client.status()
    want = "cpu" if DRY else "cuda"
    device_ok = str(status.get("device", "")).startswith(want) if "--max-memory" not in proc.args else True
    rec(f"{label}:status", device_ok and bool(status.get("loaded", True)), load_seconds=round(time.perf_counter() - t0, 1),
        status={k: v for k, v in status.items() if isinstance(v, (str, int, float, bool, type(None)))})
    tok = AutoTokenizer.from_pretrained(MODEL)
    refs: dict[str, Any] = {}
    short = prompt_text(tok, 48)
    for tokens in LONG_PROMPTS if label == "worker" else LONG_PROMPTS[:1]:
        text = prompt_text(tok, tokens)
        for what, call in (("lens", lambda: client.lens(text, top_k=1)),
                           ("attention_binned_last", lambda: client.attention(text, -1, bins=96)),
                           ("attention_binned_first", lambda: client.attention(text, 0, bins=96))):
            def one(what=what, call=call):
                with MemorySampler(proc.pid) as mem:
                    t = time.perf_counter()
                    result = call()
                    seconds = time.perf_counter() - t
                extra: dict[str, Any] = {}
                ok = True
                if what == "lens":
                    extra["layers"] = len(result["layers"])
                    extra["num_tokens"] = result.get("num_tokens")
                else:
                    w = np.asarray(result["weights"])
                    rowsum = float(np.abs(w.sum(-1) - 1).max())
                    extra.update(shape=list(w.shape), num_tokens=result.get("num_tokens"), rowsum_err=rowsum)
                    ok = rowsum < 1e-3 and w.shape[-1] == min(96, result.get("num_tokens") or 96)
                rec(f"{label}:{what}", ok, prompt_tokens=tokens, seconds=round(seconds, 2),
                    **{mem.label: gib(mem.peak), mem.label.replace("peak", "before"): gib(mem.before)}, **extra)
            guarded(f"{label}:{what}", one)

    def generation():
        t = time.perf_counter()
        got = [int(item["token_id"]) for item in client.generate(short, 8 if DRY else 32 if label == "worker" else 12)]
        seconds = time.perf_counter() - t
        refs["gen"] = got
        rec(f"{label}:generate", len(got) > 0, new_tokens=len(got), tokens_per_s=round(len(got) / max(seconds, 1e-9), 1))
    guarded(f"{label}:generate", generation)

    def lens_short():
        lens = client.lens(short, top_k=1)
        refs["lens_top1"] = [entry["top_ids"][-1][0] for entry in lens["layers"]]
        refs["attn"] = np.asarray(client.attention(short, -1)["weights"])
    guarded(f"{label}:reference", lens_short)
    return refs


def stage_worker() -> int:
    """A real worker process on the GPU: long prompts, the CLI through --connect, a typed out-of-memory error."""
    proc, sock = start_worker("worker", [])
    try:
        client = connect(proc, sock)
        refs = client_checks(client, proc, "worker")
        np_save(refs, "worker")
        guarded("worker:cli_connect", cli_connect_check, sock)
        guarded("worker:too_long", too_long_check, client)
        client.close()
    finally:
        rc = stop_worker(proc)
        rec("worker:exit_on_sigterm", rc == 0 or rc == -15, returncode=rc)
    if DRY:
        rec("worker:oom", None, skipped="dry run: a real out-of-memory needs a GPU")
    else:
        guarded("worker:oom", oom_check)
    return 0


def np_save(refs: dict[str, Any], label: str) -> None:
    import numpy as np

    payload = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in refs.items()}
    (OUT / f"{label}-ref.json").write_text(json.dumps(payload))


def cli_connect_check(sock: str) -> None:
    import numpy as np

    run = subprocess.run(cli_command() + ["attention", "--connect", sock, "--prompt", "def f(x):", "--layer", "-1",
                                          "--json"], capture_output=True, text=True, timeout=120)
    ok = run.returncode == 0
    extra: dict[str, Any] = {"returncode": run.returncode, "stderr": run.stderr[-300:]}
    if ok:
        w = np.asarray(json.loads(run.stdout)["weights"])
        extra.update(shape=list(w.shape), rowsum_err=float(np.abs(w.sum(-1) - 1).max()))
        ok = extra["rowsum_err"] < 1e-3
    rec("worker:cli_connect", ok, **extra)


def too_long_check(client: Any) -> None:
    """An absurd request (more tokens than the model has positions): a typed error, and the worker still serves."""
    from internals.errors import UserError

    words = 1000 if DRY else 200_000
    try:
        client.attention("word " * words, 0, bins=96)
        rec("worker:too_long", False, raised=None)
    except UserError as exc:
        still = bool(client.next_tokens("def", 3)["ids"])
        rec("worker:too_long", still, kind=remote_error(exc), message=str(exc)[:200], still_serves=still)


def oom_check() -> None:
    """A real CUDA out-of-memory: a worker whose allocator is capped just above the model (a per-process memory
    fraction: --max-memory only places weights) gets a 16k-token lens, whose [T, vocab] logits cannot fit. The
    answer must be a typed OutOfMemory, the memory must come back and the same worker must keep serving."""
    import torch
    from transformers import AutoTokenizer

    from internals.errors import UserError

    total = torch.cuda.get_device_properties(0).total_memory
    weights = sum(os.path.getsize(p) for p in glob.glob(os.path.join(MODEL, "*.safetensors")))
    fraction = min(0.9, (weights + 2 * 2**30) / total)
    wrapper = [sys.executable, str(Path(__file__)), "capped-worker", f"{fraction:.4f}"]
    proc, sock = start_worker("worker-oom", [], wrapper=wrapper)
    try:
        client = connect(proc, sock)
        client.load()
        before = client.status().get("gpu_allocated_bytes")
        tok = AutoTokenizer.from_pretrained(MODEL)
        text = prompt_text(tok, LONG_PROMPTS[-1])
        t = time.perf_counter()
        try:
            client.lens(text, top_k=1)
            rec("worker:oom", False, raised=None, cap_gib=gib(fraction * total))
        except UserError as exc:
            seconds = time.perf_counter() - t
            status = client.status()
            after = status.get("gpu_allocated_bytes")
            still = bool(client.next_tokens("def f(x):", 3)["ids"])
            leaked = (after - before) if after is not None and before is not None else None
            kind = remote_error(exc)
            rec("worker:oom", "OutOfMemory" in kind and still and (leaked is None or leaked < 2**28), kind=kind,
                message=str(exc)[:200], seconds=round(seconds, 2), cap_gib=gib(fraction * total),
                alloc_before_gib=gib(before), alloc_after_gib=gib(after), still_serves=still)
        client.close()
    finally:
        stop_worker(proc)


def capped_worker(fraction: str, argv: list[str]) -> None:
    """Run the CLI (whichever entry module this checkout has) with the CUDA allocator capped."""
    import runpy

    import torch

    if float(fraction) > 0:  # 0: no cap (runs the wrapper itself on a CPU)
        torch.cuda.set_per_process_memory_fraction(float(fraction), 0)
    module = "llm_internals" if (ROOT / "llm_internals.py").exists() else "internals.cli"
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# --- offload ---------------------------------------------------------------------------------------------
def offload_dirs() -> set[str]:
    return set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "llm-internals-offload-*")))


def stage_offload() -> int:
    """accelerate's big-model path (--max-memory with a small GPU cap): loads, answers like the plain worker,
    and leaves no offload folder after SIGTERM."""
    import numpy as np

    # GPU, CPU and disk all used: 1 GiB of the 3.5 GB model on the GPU, 1 GiB in CPU memory, the rest on disk
    spec = os.environ.get("OFFLOAD_SPEC") or ("cpu=200KB" if DRY else "0=1GiB,cpu=1GiB")
    before = offload_dirs()
    proc, sock = start_worker("worker-offload", ["--max-memory", spec])
    during: set[str] = set()
    try:
        client = connect(proc, sock)
        refs = client_checks(client, proc, "offload")
        during = offload_dirs() - before
        status = client.status()
        rec("offload:placement", True, spec=spec, device=status.get("device"), dtype=status.get("dtype"),
            new_offload_dirs=len(during))
        client.close()
        base_path = OUT / "worker-ref.json"
        if base_path.exists():
            base = json.loads(base_path.read_text())
            same_lens = base.get("lens_top1") == refs.get("lens_top1")
            a, b = base.get("gen") or [], refs.get("gen") or []
            same_gen = bool(b) and a[:len(b)] == b  # the offloaded worker generates fewer tokens (slower)
            diff = float(np.abs(np.asarray(base["attn"]) - refs["attn"]).max()) if "attn" in base and "attn" in refs else None
            rec("offload:matches_worker", bool(same_lens and same_gen and diff is not None and diff < 2e-2),
                lens_top1_same=same_lens, generate_same=same_gen, attention_max_abs_diff=diff)
        else:
            rec("offload:matches_worker", None, skipped="no worker-ref.json (worker stage not run)")
    finally:
        rc = stop_worker(proc)
    time.sleep(0.5)
    left = sorted(during & offload_dirs())
    rec("offload:folder_removed_on_sigterm", bool(during) and not left, returncode=rc, created=sorted(during),
        left=left, note=None if during else "no offload folder was created: nothing went to disk")
    return 0


# --- demos -----------------------------------------------------------------------------------------------
def stage_demos() -> int:
    """Each lesson demo in quick mode on the open model: seconds and peak GPU memory."""
    import torch

    from internals.model import open_model
    from lessons.demos import registry

    cuda = torch.cuda.is_available()
    opened = open_model(MODEL)
    first = ["dpo", "grpo", "lora", "teacher-sft"]  # the ones that hold several copies of the model: most memory
    names = os.environ.get("DEMOS", "").split() or sorted(registry.DEMOS, key=lambda n: (n not in first, first.index(n) if n in first else 0))
    for name in names:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        ok: bool | None
        try:
            result = registry.run_demo(name, opened, {"quick": True})
            ok, err = not result.get("stopped", False), None
        except Exception as exc:  # noqa: BLE001 - a failed demo is a result; a missing optional package is not run
            missing = type(exc).__name__ == "MissingExtraError"
            result, ok, err = {}, (None if missing else False), f"{type(exc).__name__}: {exc}"[:400]
        rec(f"demo:{name}", ok, seconds=round(time.perf_counter() - t0, 1), error=err,
            peak_gpu_alloc_gib=gib(torch.cuda.max_memory_allocated()) if cuda else None,
            peak_gpu_reserved_gib=gib(torch.cuda.max_memory_reserved()) if cuda else None,
            keys=sorted(result)[:20])
    return 0


# --- tui -------------------------------------------------------------------------------------------------
def stage_tui_check() -> int:
    """Judge the captured panes written by the driver's tmux session."""
    path = OUT / "tui.txt"
    text = path.read_text(errors="replace") if path.exists() else ""
    arch = json.loads((Path(MODEL) / "config.json").read_text()).get("architectures", ["?"])[0]
    workers = os.environ.get("TUI_WORKERS", "").split()
    left = os.environ.get("TUI_WORKER_LEFT", "").split()
    rec("tui:explorer", bool(text) and arch in text and "Traceback" not in text and bool(workers) and not left,
        architecture_shown=arch in text, traceback="Traceback" in text, captured_chars=len(text),
        explorer_workers=workers, workers_left_after_quit=left)
    return 0


STAGES = {"env": stage_env, "build": stage_build, "inproc": stage_inproc, "worker": stage_worker,
          "offload": stage_offload, "demos": stage_demos, "tui-check": stage_tui_check}


def main(argv: list[str]) -> int:
    global STAGE
    if argv[:1] == ["capped-worker"]:
        capped_worker(argv[1], argv[2:])
        return 0
    STAGE = argv[0].removesuffix("-check")
    OUT.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return STAGES[argv[0]]()
    except Exception as exc:  # noqa: BLE001 - the stage failed before its own checks: record why
        rec("stage", False, error=f"{type(exc).__name__}: {exc}"[:500], trace=traceback.format_exc()[-2000:])
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

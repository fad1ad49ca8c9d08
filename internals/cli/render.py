"""Rich output for people (the `--json` forms are for scripts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from internals.cli.tables import Column, cell, output_console, print_table


def human_count(n: int | None, digits: int = 2) -> str:
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.{digits}f}{unit}"
    return str(n)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The architecture card's rows (also drawn by the explorer)."""
    heads, kv = s.get("num_attention_heads"), s.get("num_key_value_heads")
    gqa = f"{heads} query / {kv} KV heads ({s.get('gqa_group_size')} per KV head)" if heads and kv else "-"
    norm = s.get("norm") or {}
    rope = s.get("rope") or {}
    bias = s.get("attention_bias") or {}
    tied = "yes" if s.get("tie_word_embeddings") else "no"
    shared = {True: "shared", False: "separate", None: "unknown (no weights)"}[s.get("embeddings_shared")]
    if s.get("provisional"):
        shared = "being checked"
    rows = [
        ("architecture", f"{s.get('architecture') or '?'} ({s.get('model_type') or '?'})"),
        ("parameters", f"{s['total_parameters']:,} ({human_count(s['total_parameters'])})"),
        ("layers", str(s.get("num_layers"))),
        ("hidden size", str(s.get("hidden_size"))),
        ("attention", gqa),
        ("head dim", str(s.get("head_dim"))),
        ("MLP", f"{s.get('intermediate_size')} ({s.get('mlp_kind')}, {s.get('activation')})"),
        ("norm", f"{norm.get('kind', '-')} eps={norm.get('eps')}"),
        (
            "RoPE",
            f"theta={rope.get('theta')}" + (f" scaling={rope.get('scaling')}" if rope.get("scaling") else "") if rope else "-",
        ),
        ("q/k/v/o bias", " ".join(f"{k}={'yes' if v else 'no'}" for k, v in bias.items()) or "-"),
        ("vocab", str(s.get("vocab_size"))),
        ("max positions", str(s.get("max_position_embeddings"))),
        ("experts", f"{s['num_experts']} ({s.get('num_experts_per_token')} per token)" if s.get("num_experts") else "dense"),
        ("stored dtype", str(s.get("stored_dtype"))),
        ("tied embeddings", f"config: {tied}; stored: {shared}"),
        ("layout", str(s.get("layout"))),
        ("source", f"{s.get('source_kind')}: {s.get('path')}"),
    ]
    mem = s.get("memory_bytes") or {}
    rows.append(("weights memory", "  ".join(f"{k} {human_bytes(v)}" for k, v in mem.items())))
    kv_bytes = s.get("kv_cache_bytes_per_token")
    if kv_bytes:
        rows.append(("KV cache / token", f"bf16 {human_bytes(kv_bytes['bf16'])}  fp32 {human_bytes(kv_bytes['fp32'])}"))
    return rows


def print_summary(s: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    card = Table(title="Model", show_header=False, title_justify="left")
    card.add_column(style="bold cyan")
    card.add_column()
    for key, value in summary_rows(s):
        card.add_row(key, value)
    console.print(card)
    total = s["total_parameters"] or 1
    parts = Table(title="Parameters by component", title_justify="left")
    parts.add_column("component")
    parts.add_column("parameters", justify="right")
    parts.add_column("share", justify="right")
    for comp, n in s["parameters_by_component"].items():
        if n:
            parts.add_row(comp, f"{n:,}", f"{100 * n / total:.1f}%")
    console.print(parts)


def print_stats_table(results: list[dict[str, Any]], console: Console | None = None) -> None:
    """One row per tensor; at a narrow width dtype, kurtosis, zeros and shape are left out first."""
    columns = [Column("name", "left", wraps=True), Column("shape", "left", keep=4), Column("dtype", "left", keep=1),
               Column("mean", keep=5), Column("std", keep=5), Column("min", keep=5), Column("max", keep=5),
               Column("kurtosis", keep=2), Column("zeros", keep=3)]
    rows = [[r["name"], "×".join(map(str, r["shape"])), r["dtype"], *(cell(r[k]) for k in
                                                                     ("mean", "std", "min", "max", "kurtosis", "zeros"))]
            for r in results]
    print_table(console or output_console(), f"{len(results)} tensors", columns, rows)


def print_spectrum_table(results: Sequence[Mapping[str, Any]], console: Console | None = None) -> None:
    """One row per matrix: norms, ranks, the power-law fit of the ESD's tail and spikes beyond the MP edge."""
    columns = [Column("name", "left", wraps=True), Column("shape", "left", keep=4), Column("σ_max", keep=5),
               Column("‖W‖_F", keep=5), Column("stable rank", keep=5), Column("eff. rank", keep=3), Column("α", keep=5),
               Column("KS D", keep=2), Column("α̂", keep=1), Column("spikes", keep=3)]
    rows = []
    for r in results:
        fit = r["powerlaw"] or {}
        rows.append([r["name"], "×".join(map(str, r["shape"])), *(cell(v) for v in (
            r["spectral_norm"], r["frobenius_norm"], r["stable_rank"], r["effective_rank"], fit.get("alpha"),
            fit.get("ks_distance"), fit.get("alpha_hat"))), f"{r['num_spikes']}/{r['m']}"])
    print_table(console or output_console(), f"{len(results)} matrices (λ = σ² of W; α: power-law tail of the ESD)",
                columns, rows)


@contextmanager
def _progress_bar(label: str, total: float, enabled: bool, count_column: Any) -> Iterator[Callable[..., None] | None]:
    """A transient progress bar on stderr (`label`, bar, `count_column`, time left, description); yields
    `update(completed, description)`, or None when not `enabled` or stderr is not a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), count_column(), TimeRemainingColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def update(completed: float, description: str) -> None:
            progress.update(task, completed=completed, description=description)

        yield update


@contextmanager
def stats_progress(
    total: int, enabled: bool = True, label: str = "statistics"
) -> Iterator[Callable[[int, int, str], None] | None]:
    """A progress bar on stderr; yields the callback `iter_stats` calls after each tensor."""
    from rich.progress import MofNCompleteColumn

    with _progress_bar(label, total, enabled, MofNCompleteColumn) as update:
        yield None if update is None else (lambda done, _total, name: update(done, name))


@contextmanager
def fraction_progress(label: str, enabled: bool = True) -> Iterator[Callable[[float, str], None] | None]:
    """A progress bar on stderr for an operation that reports `progress(fraction, message)`; None when
    stderr is not a terminal (scripts and --json get no bar)."""
    from rich.progress import TaskProgressColumn

    with _progress_bar(label, 1.0, enabled, TaskProgressColumn) as update:
        yield update

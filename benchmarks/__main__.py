"""`python -m benchmarks`: run every benchmark, each in a fresh process, and merge their JSON reports.

Writes benchmarks/out/all.json (and each benchmark's own report). `--quick` uses 2 of the 28 layers of the
1.5B-shaped synthetic checkpoint, for a run of a few minutes; figures are then not the full-model ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "stats": ("bench_stats.py", [], ["--quick"]),
    "attention": ("bench_attention.py", [], ["--layers", "2", "--repeats", "1"]),
    "explorer": ("bench_explorer.py", [], ["--layers", "2", "--repeats", "1"]),
    "patching": ("bench_patching.py", [], ["--layers", "2", "--repeats", "1"]),
    "diff": ("bench_diff.py", [], ["--layers", "2", "--repeats", "1"]),
    "spectrum": ("bench_spectrum.py", [], ["--layers", "2"]),
    "first_stats": ("bench_first_stats.py", [], ["--layers", "2", "--repeats", "1"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2-layer checkpoint, one repeat")
    p.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these (repeatable)")
    args = p.parse_args(argv)
    merged: dict = {}
    failed = []
    for name in args.only or BENCHMARKS:
        script, full, quick = BENCHMARKS[name]
        print(f"benchmarks: running {name}…", file=sys.stderr)
        proc = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            failed.append(name)
            merged[name] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
            continue
        report = HERE / "out" / f"{name}.json"
        merged[name] = json.loads(report.read_text())
    (HERE / "out").mkdir(exist_ok=True)
    text = json.dumps(merged, indent=2)
    (HERE / "out" / "all.json").write_text(text + "\n")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

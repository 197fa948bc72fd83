"""CLI start-up benchmark: `kbchat --help` and `kbchat kb list` against a bare `import typer`.

Usage: python bench/cli_startup.py [--runs 5] [--label after] [--instructions] [--root CHECKOUT]
       [--out bench/results/cli_startup.json]

Each command runs ``--runs`` times in a fresh interpreter (``sys.executable``, this checkout first
on PYTHONPATH, KBCHAT_HOME in a temporary folder); the JSON gives the median wall time and the
median CPU time (user + system: less disturbed by other load on the machine) in seconds, their
ratios to the bare import, the heaviest top-level packages by ``python -X importtime`` self time
(milliseconds) and which of numpy, faiss, fastapi, sqlalchemy, pydantic_settings were imported.
Two floors are measured alongside: a one-flag typer command (typer 0.29 builds a pydantic
TypeAdapter per parameter it parses) and importing the libraries ``kb list`` cannot do without.
With ``--instructions`` each command also runs once under valgrind, whose instruction count
(and its ratio to the bare import) stays the same however busy the machine is.
Results of several labels ("before", "after") accumulate in one file.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "faiss", "fastapi", "sqlalchemy", "pydantic_settings")
TYPER_COMMAND = """
import typer
app = typer.Typer()
@app.command()
def hello(as_json: bool = False) -> None:
    pass
app([], standalone_mode=False)
"""
COMMANDS: dict[str, list[str]] = {
    "import typer": ["-c", "import typer"],
    "kbchat --help": ["-m", "kbchat", "--help"],
    "kbchat kb list": ["-m", "kbchat", "kb", "list"],
    # floors: what any typer command costs, and the libraries `kb list` cannot do without
    "floor: a one-flag typer command": ["-c", TYPER_COMMAND],
    "floor: kb list's libraries": [
        "-c",
        "import typer, pydantic_settings, sqlalchemy.dialects.sqlite, rich.console, rich.table",
    ],
}


def _env(home: Path, root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["KBCHAT_HOME"] = str(home)
    return env


def run_times(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per run of ``python *args`` (output discarded; failing raises)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=env["KBCHAT_HOME"],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def import_profile(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Self import time (ms) per top-level package, and which heavy packages were imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        env=env,
        cwd=env["KBCHAT_HOME"],  # not the checkout: `python -m` puts the working directory first
        check=True,
        capture_output=True,
    )
    per_package: Counter[str] = Counter()
    for line in done.stderr.decode().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.split(":", 1)[1].split("|")
        per_package[name.strip().split(".")[0]] += int(self_us)
    return {
        "import_ms_total": round(sum(per_package.values()) / 1000, 1),
        "top_packages_ms": {k: round(v / 1000, 1) for k, v in per_package.most_common(8)},
        "heavy_imported": [name for name in HEAVY if name in per_package],
    }


def instructions(args: list[str], env: dict[str, str]) -> int:
    """Instructions one run executes, counted by valgrind (cachegrind, no cache simulation):
    unlike times, the count does not grow with other load on the machine."""
    valgrind = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
    ]
    done = subprocess.run(
        [*valgrind, sys.executable, *args],
        env=env,
        cwd=env["KBCHAT_HOME"],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def run(runs: int, root: Path, *, count: bool = False) -> dict[str, Any]:
    # kbchat's own modules load from bytecode, as from an installed package (with
    # PYTHONDONTWRITEBYTECODE set, every run would otherwise compile them again)
    compileall.compile_dir(root / "kbchat", quiet=1)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home:
        env = _env(Path(home), root)
        for label, args in COMMANDS.items():
            walls, cpus = run_times(args, env, runs)
            results[label] = {
                "median_s": round(statistics.median(walls), 3),
                "median_cpu_s": round(statistics.median(cpus), 3),
                "runs_s": [round(t, 3) for t in walls],
                **import_profile(args, env),
            }
            if count:
                results[label]["instructions"] = instructions(args, env)
    bare = results["import typer"]
    for entry in results.values():
        entry["ratio_to_bare_typer"] = round(entry["median_s"] / bare["median_s"], 2)
        entry["cpu_ratio_to_bare_typer"] = round(entry["median_cpu_s"] / bare["median_cpu_s"], 2)
        if count:
            ratio = entry["instructions"] / bare["instructions"]
            entry["instructions_ratio_to_bare_typer"] = round(ratio, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="Checkout to measure.")
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="Also count each command's instructions once under valgrind (slow; load-proof).",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.json")
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report[args.label] = {
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "runs": args.runs,
        "root": str(args.root),
        "commands": run(args.runs, args.root, count=args.instructions),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for label, entry in report[args.label]["commands"].items():
        print(
            f"{label:32} wall {entry['median_s']:.3f} s ({entry['ratio_to_bare_typer']}x)  "
            f"cpu {entry['median_cpu_s']:.3f} s ({entry['cpu_ratio_to_bare_typer']}x)"
            + (
                f"  instructions {entry['instructions'] / 1e6:.0f} M "
                f"({entry['instructions_ratio_to_bare_typer']}x)"
                if "instructions" in entry
                else ""
            )
        )


if __name__ == "__main__":
    main()

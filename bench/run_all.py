"""Every benchmark scenario in one command, one JSON, one report, and plots.

    uv run python bench/run_all.py            # make bench: full measuring windows
    uv run python bench/run_all.py --quick    # make bench-quick: same scenarios and
                                              # data sizes, shorter windows, < 5 min warm

Each scenario is its own script in ``bench/`` that starts the real servers it
needs (Kafka, Redis: ``ticklake.devstack``), warms up, repeats its
measurement and writes ``bench/results/<scenario>.json`` with medians and
spreads beside a reference measured in the same run. This script runs them
one after another (never in parallel: the machine has two cores), then writes

* ``bench/results/latest.json``: machine facts, git commit, every figure by its
  dotted key (``produce.ticks_per_s`` ...) with its unit, and each scenario's
  full output;
* ``docs/benchmarks.md``: one table per scenario, figure beside reference,
  ratio, target and whether it is met;
* ``docs/benchmarks/*.png``: latency percentiles against offered rate, and
  throughput of ticklake against its references.

A scenario that fails is reported as failed in the table with its error; the
others still run. Every run is bounded by a per-scenario time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    full_args: list[str]
    quick_args: list[str]
    time_limit_s: int
    output: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def json_path(self) -> Path:
        return RESULTS / (self.output or f"{self.name}.json")


SCENARIOS: list[Scenario] = [
    Scenario("decode", "bench_decode.py", ["--repeats", "7"],
             ["--repeats", "5", "--n", "100000"], 300),
    Scenario("produce", "bench_produce.py", ["--repeats", "3"],
             ["--repeats", "2", "--records", "300000", "--compression", "zstd"], 900),
    Scenario("ingest", "bench_ingest.py", ["--repeats", "3"],
             ["--repeats", "1", "--naive-seconds", "8"], 1200),
    Scenario("ingest_latency", "bench_ingest_latency.py", ["--repeats", "3"],
             ["--repeats", "1", "--seconds", "8"], 900),
    Scenario("latency", "bench_latency.py", [], ["--quick"], 1500),
    Scenario("query", "bench_query.py", ["--repeats", "3"],
             ["--repeats", "1", "--seconds", "4"], 1500),
]  # fmt: skip


def machine_facts() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from ticklake.devstack.kafka import KAFKA_VERSION

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_version": KAFKA_VERSION,
        "java": java.splitlines()[0] if java else "",
        "load_average_at_start": list(os.getloadavg()),
    }


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return result.stdout.strip() + ("-dirty" if dirty else "")


def run_scenario(scenario: Scenario, quick: bool) -> dict[str, Any]:
    args = scenario.quick_args if quick else scenario.full_args
    argv = [sys.executable, str(ROOT / "bench" / scenario.script), *args,
            "--json", str(scenario.json_path)]  # fmt: skip
    print(f"\n=== {scenario.name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    try:
        subprocess.run(argv, cwd=ROOT, check=True, timeout=scenario.time_limit_s,
                       env={**os.environ, **scenario.extra_env})  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - started}
    output: dict[str, Any] = json.loads(scenario.json_path.read_text())
    output["seconds"] = round(time.monotonic() - started, 1)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measuring windows")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild latest.json and the report from existing results",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    from report import build_latest, write_plots, write_report

    outputs: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        if args.only and scenario.name not in args.only:
            if scenario.json_path.exists():
                outputs[scenario.name] = json.loads(scenario.json_path.read_text())
            continue
        if args.report_only:
            if scenario.json_path.exists():
                outputs[scenario.name] = json.loads(scenario.json_path.read_text())
            continue
        outputs[scenario.name] = run_scenario(scenario, args.quick)

    machine, commit, quick = machine_facts(), git_commit(), args.quick
    previous = RESULTS / "latest.json"
    if args.report_only and previous.exists():
        # the figures come from that earlier run: keep its machine facts and commit
        before = json.loads(previous.read_text())
        machine, commit = before["machine"], before["git_commit"]
        quick = before.get("mode") == "quick"
    latest = build_latest(outputs, machine, commit, quick=quick)
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2, default=str) + "\n")
    PLOTS.mkdir(parents=True, exist_ok=True)
    plots = write_plots(latest, PLOTS)
    DOC.write_text(write_report(latest, plots, DOC.parent))
    print(f"\nwrote {RESULTS / 'latest.json'}, {DOC} and {len(plots)} plots")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())

"""Every benchmark scenario in one command, one JSON, one report, and plots.

    uv run python bench/run_all.py                # make bench: full measuring windows
    uv run python bench/run_all.py --quick        # make bench-quick: shorter windows
    uv run python bench/run_all.py --report-only  # = bench/report.py: rebuild from results

Refuses to start on a tree with modified tracked files (``bench/provenance.py``)
unless ``--allow-dirty``; then every result and the report say DIRTY.

Each scenario is its own script in ``bench/`` that starts the real servers it
needs (Kafka, Redis: ``ticklake.devstack``), warms up, repeats its
measurement and writes ``bench/results/<scenario>.json`` with medians,
spreads and the commit measured, beside a reference measured in the same run.
This script runs them one after another (never in parallel: the machine has
two cores), then ``bench/report.py`` writes

* ``bench/results/latest.json``: this run (machine, commit, mode, seconds per
  scenario, failures), every figure by its dotted key with its unit, and each
  scenario's full output;
* ``docs/benchmarks.md``: one table per scenario, figure beside reference,
  ratio, target and whether it is met, with the method next to the figures;
* the generated blocks of other pages (``<!-- bench:begin NAME -->``);
* ``docs/benchmarks/*.png``: latency percentiles against offered rate, and
  throughput of ticklake against its references.

A scenario that fails is reported as failed in the table with its error (its
figures, if any, are an earlier run's and show that run's commit); the others
still run. Every run is bounded by a per-scenario time limit.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import provenance  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


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
    # quick: two fifths of the backlog
    Scenario("ingest", "bench_ingest.py", ["--repeats", "3"],
             ["--repeats", "1", "--ticks", "400000"], 1200),
    # quick: one pair of drains over a smaller backlog, still 4 partitions a replica
    Scenario("scaleout", "bench_scaleout.py", ["--repeats", "3"],
             ["--repeats", "1", "--ticks", "600000"], 900),
    Scenario("ingest_latency", "bench_ingest_latency.py", ["--repeats", "3"],
             ["--repeats", "1", "--seconds", "6"], 900),
    Scenario("latency", "bench_latency.py", [], ["--quick"], 1500),
    Scenario("query", "bench_query.py", ["--repeats", "3"],
             ["--repeats", "1", "--seconds", "2"], 1500),
    # quick: a fifth of the backlog (labelled in the report)
    Scenario("backlog_latency", "bench_backlog_latency.py", [],
             ["--backlog", "200000", "--settle-seconds", "5"], 900),
    Scenario("profile", "bench_profile.py", ["--repeats", "3"],
             ["--repeats", "1", "--ticks", "300000"], 900),
    # quick: a twentieth of the day, still 50 files; not beside ingest (its Kafka drains
    # would take bench-quick past 10 minutes)
    Scenario("lake_table", "bench_lake_table.py", ["--repeats", "3"],
             ["--repeats", "1", "--ticks", "500000", "--ingest-ticks", "0"], 900),
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


def run_scenario(scenario: Scenario, quick: bool, allow_dirty: bool) -> dict[str, Any]:
    """Run one scenario script; its figures are in ``scenario.json_path`` afterwards.

    Returns ``{"seconds": ...}`` and, when it failed, ``"error"`` (its JSON file then
    still holds an earlier run's figures, which the report shows with their own commit).
    """
    args = scenario.quick_args if quick else scenario.full_args
    argv = [sys.executable, str(ROOT / "bench" / scenario.script), *args,
            "--json", str(scenario.json_path)]  # fmt: skip
    if allow_dirty:
        argv.append("--allow-dirty")
    print(f"\n=== {scenario.name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    try:
        subprocess.run(argv, cwd=ROOT, check=True, timeout=scenario.time_limit_s,
                       env={**os.environ, **scenario.extra_env})  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}", "seconds": round(time.monotonic() - started)}
    return {"seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measuring windows")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild latest.json and the report from existing results (bench/report.py)",
    )
    provenance.add_argument(parser)
    args = parser.parse_args()
    import report

    if args.report_only:
        return report.main([])
    # refuse before spending minutes on figures that could not be published
    stamp = provenance.stamp(args.allow_dirty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    assert [s.name for s in SCENARIOS] == list(report.SCENARIOS), "report.py lists other files"
    started = time.monotonic()
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for scenario in SCENARIOS:
        if args.only and scenario.name not in args.only:
            continue
        outcome = run_scenario(scenario, args.quick, args.allow_dirty)
        seconds[scenario.name] = outcome["seconds"]
        if "error" in outcome:
            failed[scenario.name] = outcome["error"]
    run = {
        "machine": machine_facts(),
        **stamp,
        "mode": "quick" if args.quick else "full",
        # the make target only when the run was exactly what it runs
        "command": {(): "make bench", ("--quick",): "make bench-quick"}.get(
            tuple(sys.argv[1:]), "uv run --frozen python bench/run_all.py " + " ".join(sys.argv[1:])
        ),
        "argv": " ".join(["uv run --frozen python bench/run_all.py", *sys.argv[1:]]),
        "scenario_seconds": seconds,
        "total_seconds": round(time.monotonic() - started),
        "failed": failed,
    }
    report.write_all(run)
    print(f"\nwrote {report.LATEST}, {report.DOC} and the generated blocks of docs/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fault suite's tables in docs/reliability.md, rendered from bench/results/chaos*.json.

    uv run python bench/chaos_report.py          # rewrite the table in docs/reliability.md
    uv run python bench/chaos_report.py --check  # exit 1 when the table is not the JSON's

Each table sits between the ``chaos-table`` markers naming its file (:data:`TABLES`);
the rest of the page is prose.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "reliability.md"
TABLES = ("chaos.json", "chaos-1m.json", "chaos-1m-spread.json")
"""Result files with a table in the page, each between its own markers."""


def begin(name: str) -> str:
    return f"<!-- chaos-table:begin (rendered by bench/chaos_report.py from {name}) -->"


def end(name: str) -> str:
    return f"<!-- chaos-table:end {name} -->"


COLUMNS = (
    "feed / fault",
    "lost",
    "duplicated",
    "rows ≠ clean run",
    "EMAs ≠ pandas",
    "1m bars ≠ pandas",
    "Redis latest stale",
    "recovered after fault end (s)",
    "restarts (exit codes)",
    "what the user saw (`/readyz` polls; stall reason)",
)


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _seen(result: dict[str, Any]) -> str:
    polls = ", ".join(f"{k} ×{n}" for k, n in list(result.get("readiness_polls", {}).items())[:4])
    stalls: dict[str, int] = {}
    for reason, count in result.get("stall_reasons_seen", {}).items():
        stage, _, error = reason.partition(": ")
        kind = f"`{stage}` {error.split(':', 1)[0]}"
        stalls[kind] = stalls.get(kind, 0) + count
    if stalls:
        polls += "; stalled: " + ", ".join(f"{k} ×{n}" for k, n in stalls.items())
    if result.get("s3_requests_failed"):
        polls += f"; S3 answered {result['s3_requests_failed']} requests with errors"
    return polls.replace("|", "/")


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Command: `{report['command'].strip()}`: {report['ticks']:,} ticks per run "
        f"({report.get('kill9_ticks', report['ticks']):,} in `kill9` and the clean runs) at "
        f"{report['rate']:,.0f} ticks/s, {report.get('kills', 20)} SIGKILLs in `kill9`, "
        f"{report.get('cpus', '?')} CPUs, load average {report['load_avg_at_start']} at the "
        f"start, {report.get('wall_s', 0) / 60:.0f} min in all.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for name, r in report["scenarios"].items():
        restarts = f"{r.get('process_restarts', 0)}"
        if r.get("exit_codes"):
            restarts += f" ({', '.join(str(c) for c in r['exit_codes'])})"
        clean = r.get("feature_rows_differing_from_clean")
        row = [
            f"{name} ({r.get('replicas', 2)} repl., {r.get('ordering', 'keyed')})",
            _cell(r.get("lost")),
            _cell(r.get("duplicated")),
            "reference" if name.endswith("/clean") else _cell(clean),
            _cell(r.get("ema_rows_differing_from_pandas")),
            _cell(r.get("bars_1m_differing_from_pandas")),
            _cell(r.get("redis_latest_stale_symbols")),
            _cell(r.get("recovered_after_fault_s")),
            restarts,
            _seen(r),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def updated(doc: str, name: str, table: str) -> str:
    if begin(name) not in doc or end(name) not in doc:
        raise SystemExit(f"{DOC}: the {begin(name)!r} / {end(name)!r} markers are missing")
    head, rest = doc.split(begin(name), 1)
    _, tail = rest.split(end(name), 1)
    return f"{head}{begin(name)}\n{table}\n{end(name)}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    doc = DOC.read_text()
    new = doc
    for name in TABLES:
        new = updated(new, name, render(json.loads((RESULTS / name).read_text())))
    if args.check:
        if new != doc:
            print(f"{DOC} is stale: run uv run python bench/chaos_report.py", file=sys.stderr)
            sys.exit(1)
        return
    DOC.write_text(new)


if __name__ == "__main__":
    main()

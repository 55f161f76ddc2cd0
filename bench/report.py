"""Turn the scenario results into ``latest.json``, ``docs/benchmarks.md``, doc blocks and plots.

    uv run python bench/report.py          # rewrite them from bench/results/*.json
    uv run python bench/report.py --check  # exit 1 when a page is not what the results give

Every benchmark figure in ``docs/`` comes from here: ``docs/benchmarks.md`` as a
whole, and in other pages the regions between ``<!-- bench:begin NAME -->`` and
``<!-- bench:end NAME -->`` (:data:`BLOCKS`). ``tests/test_benchmarks_doc.py``
runs ``--check``, so a hand-edited figure, or results committed without the
pages rebuilt, fail the tests.

The run's own facts (machine, commit, mode, seconds, failures) are kept in
``latest.json`` by ``run_all.py``; everything else is read from the scenario
files, so the check rebuilds ``latest.json`` too and compares it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import scaling_model  # bench/ is the script's folder (or put on sys.path by the tests)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LATEST = RESULTS / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"

SCENARIOS = ("decode", "produce", "ingest", "scaleout", "ingest_latency", "latency", "query",
             "backlog_latency", "profile", "lake_table")  # fmt: skip
"""The scenarios of ``make bench`` (``run_all.SCENARIOS``), each in ``bench/results/NAME.json``."""

RUN_KEYS = ("machine", "git_commit", "dirty", "dirty_files", "mode", "command", "argv",
            "scenario_seconds", "total_seconds", "failed")  # fmt: skip
"""What ``latest.json`` holds about the run itself (written by ``run_all.py``)."""

UNITS: dict[str, str] = {
    "produce.ticks_per_s": "ticks/s",
    "produce.kafka_perf_msgs_per_s": "records/s",
    "produce.kafka_perf_record_size_msgs_per_s": "records/s",
    "ingest.ticks_per_s": "ticks/s",
    "ingest.durable_ticks_per_s": "ticks/s",
    "ingest.processed_ticks_per_s": "ticks/s",
    "ingest.tail_s": "s",
    "ingest.raw_consumer_ticks_per_s": "ticks/s",
    "ingest.naive_durable_ticks_per_s": "ticks/s",
    "ingest.tables_off_durable_ticks_per_s": "ticks/s",
    "ingest.table_commit_mean_ms": "ms",
    "lake_table.files_per_day_before": "files",
    "lake_table.files_per_day_after": "files",
    "lake_table.bars_before_s": "s",
    "lake_table.bars_after_s": "s",
    "lake_table.compact_s": "s",
    "lake_table.compact_rows_per_s": "rows/s",
    "lake_table.commit_median_ms": "ms",
    "lake_table.commit_p99_ms": "ms",
    "lake_table.ingest_alone_ticks_per_s": "ticks/s",
    "lake_table.ingest_beside_compaction_ticks_per_s": "ticks/s",
    "ingest.rss_steady_mb": "MB",
    "ingest.rss_peak_mb": "MB",
    "scaleout.ratio": "×",
    "memory.ingest_rss_mb": "MB",
    "memory.ingest_rss_peak_mb": "MB",
    "latest.p50_ms_at_1k": "ms",
    "latest.p99_ms_at_1k": "ms",
    "latest.bare_p99_ms_at_1k": "ms",
    "latest.max_rps": "requests/s",
    "latest.bare_uvicorn_rps": "requests/s",
    "latest.auth_p50_ms_at_1k": "ms",
    "latest.auth_p99_ms_at_1k": "ms",
    "latest.auth_max_rps": "requests/s",
    "history.bars_1m_10m_s": "s",
    "history.bars_1m_from_bars_dataset_s": "s",
    "history.duckdb_direct_s": "s",
    "history.pandas_s": "s",
    "history.ticks_one_day_s": "s",
    "history.ticks_tenth_page_s": "s",
    "history.ticks_one_day_duckdb_direct_s": "s",
    "history.ticks_one_day_pandas_s": "s",
    "decode.us_per_tick": "µs/tick",
    "decode.batch_us_per_tick": "µs/tick",
    "decode.stdlib_json_us_per_tick": "µs/tick",
    "profile.ingest_cpu_us_per_tick": "CPU µs/tick",
    "profile.raw_consumer_cpu_us_per_tick": "CPU µs/tick",
}
SCALEOUT_SIDES = ("one_replica", "scaled")
"""``scaleout.json``'s two sides: one replica, and ``replicas`` of them."""
SCALEOUT_UNITS = {
    "durable_ticks_per_s": "ticks/s",
    "processed_ticks_per_s": "ticks/s",
    "ticks_per_ingest_cpu_s": "ticks/CPU-s",
    "tail_s": "s",
    "all_assigned_after_s": "s",
}
"""The figures of each side kept in ``latest.json``, with their units."""
for _side in SCALEOUT_SIDES:
    for _figure, _unit in SCALEOUT_UNITS.items():
        UNITS[f"scaleout.{_side}_{_figure}"] = _unit
for _system in ("ticklake", "raw", "naive", "ingest_histogram"):
    for _pct in ("p50", "p90", "p99"):
        UNITS[f"ingest_latency.{_system}_{_pct}_ms"] = "ms"
LATENCY_RATES = (1000, 5000, 20000)
for _rate in LATENCY_RATES:
    for _key in ("p50_ms", "p99_ms", "p999_ms", "kafka_e2e_p50_ms", "kafka_e2e_p99_ms",
                 "kafka_e2e_p999_ms", "hist_p50_ms", "hist_p99_ms", "hist_p999_ms"):  # fmt: skip
        UNITS[f"latency.{_rate}.{_key}"] = "ms"
    UNITS[f"latency.{_rate}.achieved_rate"] = "ticks/s"
KAFKA_OWN_KEYS = ("kafka_own_p50_ms", "kafka_own_p99_ms", "kafka_own_p999_ms")
"""bench_latency.py's Kafka's own end-to-end latency (paced, sub-ms) at each rate."""
for _rate in LATENCY_RATES:
    for _key in KAFKA_OWN_KEYS:
        UNITS[f"latency.{_rate}.{_key}"] = "ms"
for _key in ("idle_free_p50_ms", "idle_free_p99_ms", "idle_free_after_p50_ms",
             "idle_free_after_p99_ms", "idle_behind_p50_ms", "idle_behind_p99_ms"):  # fmt: skip
    UNITS[f"backlog.{_key}"] = "ms"
UNITS["backlog.rss_peak_mb"] = UNITS["backlog.rss_after_mb"] = "MB"
for _size in ("10", "100", "1000", "10000"):  # bench_profile.STEP_SIZES
    UNITS[f"profile.step_{_size}_us_per_tick"] = "CPU µs/tick"
UNITS["backlog.ticks"] = "ticks"


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` or ``None`` when any step is missing."""
    for step in path:
        if isinstance(obj, dict) and step in obj:
            obj = obj[step]
        elif isinstance(obj, list) and isinstance(step, int) and -len(obj) <= step < len(obj):
            obj = obj[step]
        else:
            return None
    return obj


def first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def figures(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The suite's dotted keys, read from each scenario's own output."""
    d, p, i, so, il, lat, q = (outputs.get(k, {}) for k in (
        "decode", "produce", "ingest", "scaleout", "ingest_latency", "latency",
        "query"))  # fmt: skip
    prof = outputs.get("profile", {})
    ir = dig(i, "results") or {}
    # an until-durable figure is the headline only when ingest ran at its defaults
    # (results from before settings were recorded used a 2 s roll: not shown as one)
    durable = (
        dig(ir, "ticklake_durable_ticks_per_s", "median")
        if dig(i, "settings", "all_defaults")
        else None
    )
    f: dict[str, Any] = {
        "decode.us_per_tick": dig(d, "decode", "us_per_tick"),
        "decode.batch_us_per_tick": dig(d, "decode", "batch_us_per_tick"),
        "decode.stdlib_json_us_per_tick": dig(d, "decode", "stdlib_json_us_per_tick"),
        "produce.ticks_per_s": dig(p, "produce", "zstd", "ticklake_ticks_per_s", "median"),
        "produce.kafka_perf_msgs_per_s": dig(
            p, "produce", "zstd", "java_same_payload_records_per_s", "median"
        ),
        "produce.kafka_perf_record_size_msgs_per_s": dig(
            p, "produce", "zstd", "java_record_size_records_per_s", "median"
        ),
        # the headline is the rate until durable; processed is the secondary figure
        "ingest.ticks_per_s": durable,
        "ingest.durable_ticks_per_s": durable,
        "ingest.processed_ticks_per_s": dig(ir, "ticklake_processed_ticks_per_s", "median"),
        "ingest.tail_s": dig(ir, "ticklake_tail_s", "median"),
        "ingest.raw_consumer_ticks_per_s": dig(ir, "raw_msgs_per_s", "median"),
        "ingest.naive_durable_ticks_per_s": dig(ir, "naive_durable_ticks_per_s", "median"),
        "ingest.tables_off_durable_ticks_per_s": dig(
            ir, "tables_off_durable_ticks_per_s", "median"
        ),
        "ingest.table_commit_mean_ms": dig(ir, "ticklake_table_commit_mean_ms", "median"),
        "ingest.rss_steady_mb": dig(ir, "ticklake_rss_steady_mb", "median"),
        "ingest.rss_peak_mb": dig(ir, "ticklake_rss_peak_mb", "median"),
        "scaleout.replicas": dig(so, "replicas"),
        "scaleout.ratio": dig(so, "ratio"),
        "memory.ingest_rss_mb": dig(lat, "memory", "ingest_rss_mb"),
        "memory.ingest_rss_peak_mb": dig(lat, "memory", "ingest_rss_mb_peak"),
        "latest.p50_ms_at_1k": dig(q, "latest", "latest", "fixed_1000rps", "p50_ms"),
        "latest.p99_ms_at_1k": dig(q, "latest", "latest", "fixed_1000rps", "p99_ms"),
        "latest.bare_p99_ms_at_1k": dig(q, "latest", "bare", "fixed_1000rps", "p99_ms"),
        "latest.max_rps": dig(q, "latest", "latest", "max_rps"),
        "latest.bare_uvicorn_rps": dig(q, "latest", "bare", "max_rps"),
        "latest.auth_p50_ms_at_1k": dig(q, "latest", "latest_auth", "fixed_1000rps", "p50_ms"),
        "latest.auth_p99_ms_at_1k": dig(q, "latest", "latest_auth", "fixed_1000rps", "p99_ms"),
        "latest.auth_max_rps": dig(q, "latest", "latest_auth", "max_rps"),
        "history.bars_1m_10m_s": dig(q, "bars_1m", "api_from_ticks", "median_s"),
        "history.bars_1m_from_bars_dataset_s": dig(q, "bars_1m", "api_from_bars_1m", "median_s"),
        "history.duckdb_direct_s": dig(q, "bars_1m", "direct_duckdb", "median_s"),
        "history.pandas_s": dig(q, "bars_1m", "pandas", "median_s"),
        "history.ticks_one_day_s": dig(q, "ticks_one_day", "api_first_page", "median_s"),
        "history.ticks_tenth_page_s": dig(q, "ticks_one_day", "api_tenth_page", "median_s"),
        "history.ticks_one_day_duckdb_direct_s": dig(
            q, "ticks_one_day", "direct_duckdb", "median_s"
        ),
        "history.ticks_one_day_pandas_s": dig(q, "ticks_one_day", "pandas", "median_s"),
        "profile.ingest_cpu_us_per_tick": dig(prof, "results", "ingest_cpu_us_per_tick"),
        "profile.raw_consumer_cpu_us_per_tick": dig(
            prof, "results", "raw_consumer_cpu_us_per_tick"
        ),
    }
    for stage, us in (dig(prof, "results", "stage_us_per_tick") or {}).items():
        f[f"profile.stage.{stage}"] = us
    for size, cost in (dig(prof, "results", "step_cost_by_ticks_per_step") or {}).items():
        f[f"profile.step_{size}_us_per_tick"] = cost["median_us_per_tick"]
    for side in SCALEOUT_SIDES:
        for figure in SCALEOUT_UNITS:
            f[f"scaleout.{side}_{figure}"] = dig(so, side, figure, "median")
    for system in ("ticklake", "raw", "naive", "ingest_histogram"):
        for pct in ("p50", "p90", "p99"):
            f[f"ingest_latency.{system}_{pct}_ms"] = dig(il, "medians_ms", system, pct)
    for rate in LATENCY_RATES:
        row = dig(lat, "latency", str(rate))
        for key in ("p50_ms", "p99_ms", "p999_ms", "kafka_e2e_p50_ms", "kafka_e2e_p99_ms",
                    "kafka_e2e_p999_ms", "hist_p50_ms", "hist_p99_ms", "hist_p999_ms",
                    "observed_ticks", "ticks_in_window", "achieved_rate"):  # fmt: skip
            f[f"latency.{rate}.{key}"] = dig(row, key)
        # Kafka's own paced e2e: only in results that measured it (older ones keep their keys)
        for key in KAFKA_OWN_KEYS:
            if dig(row, key) is not None:
                f[f"latency.{rate}.{key}"] = dig(row, key)
    f.update(backlog_figures(outputs.get("backlog_latency")))
    f.update(lake_table_figures(outputs.get("lake_table")))
    return f


def lake_table_figures(lt: dict[str, Any] | None) -> dict[str, Any]:
    """``lake_table.*``: bench_lake_table.py's figures (none when it has no results)."""
    if not lt:
        return {}
    r = lt.get("results") or {}
    return {
        "lake_table.files_per_day_before": lt.get("files_per_day_before"),
        "lake_table.files_per_day_after": lt.get("files_per_day_after"),
        "lake_table.bars_before_s": dig(r, "bars_before_s", "median"),
        "lake_table.bars_after_s": dig(r, "bars_after_s", "median"),
        "lake_table.compact_s": dig(r, "compact_s", "median"),
        "lake_table.compact_rows_per_s": dig(r, "compact_rows_per_s", "median"),
        "lake_table.commit_median_ms": dig(lt, "commit_ms", "median"),
        "lake_table.commit_p99_ms": dig(lt, "commit_ms", "p99"),
        "lake_table.ingest_alone_ticks_per_s": dig(
            lt, "ingest_beside_compaction", "durable_ticks_per_s_alone", "median"
        ),
        "lake_table.ingest_beside_compaction_ticks_per_s": dig(
            lt, "ingest_beside_compaction", "durable_ticks_per_s_beside", "median"
        ),
    }


def lake_table_rows(g: Callable[[str], Any], lt: dict[str, Any]) -> list[Row]:
    ticks = lt.get("ticks") or 0
    return [
        ("files of the day (one partition), after compaction",
         g("lake_table.files_per_day_after"), "before: ingest's flushes of "
         f"{_fmt(lt.get('file_rows'))} rows", g("lake_table.files_per_day_before"), "files",
         ""),
        (f"`/bars` 1 m over the day's {ticks:,} ticks (lake reader, through the table), "
         "after compaction", g("lake_table.bars_after_s"), "before compaction",
         g("lake_table.bars_before_s"), "s", ""),
        ("compaction of the day (read, sort by symbol and time, write, one commit)",
         g("lake_table.compact_rows_per_s"), "—", None, "rows/s",
         f"{_fmt(g('lake_table.compact_s'), 's')} for the day"),
        ("one table commit while the day was written (median)",
         g("lake_table.commit_median_ms"), "p99", g("lake_table.commit_p99_ms"), "ms", ""),
        ("ingest until durable, defaults, while a compaction of the old day runs",
         g("lake_table.ingest_beside_compaction_ticks_per_s"), "the same drain alone",
         g("lake_table.ingest_alone_ticks_per_s"), "ticks/s", _overlap(lt)),
    ]  # fmt: skip


def _overlap(lt: dict[str, Any]) -> str:
    b = lt.get("ingest_beside_compaction") or {}
    compaction, drain = (
        dig(b, "compaction_s", "median"),
        dig(b, "ingest_start_to_durable_s", "median"),
    )
    if compaction is None or drain is None:
        return ""
    return f"compaction {_fmt(compaction, 's')}, drain {_fmt(drain, 's')}"


def lake_table_method(lt: dict[str, Any]) -> str:
    return (
        f"Method (`bench/bench_lake_table.py`): one UTC day of one symbol, {lt.get('ticks', 0):,} "
        f"ticks (the query benchmark's day), written as files of {_fmt(lt.get('file_rows'))} "
        "rows and added to a `ticks` Delta table one commit per file, each with its offset as "
        "the commit's transaction version, as ingest commits a flush. Then "
        f"{lt.get('repeats')} times on a fresh copy: the query API's lake reader computes the "
        "day's 1-minute bars through the table (median of 3 calls), `ticklake-lake`'s "
        "`compact_day` rewrites the day, and the bars are computed again (and checked equal)."
        + _beside_method(lt)
    )


def _beside_method(lt: dict[str, Any]) -> str:
    if not lt.get("ingest_beside_compaction"):
        return " Not measured beside ingest in this run (a quick run leaves it out)."
    return (
        " Beside ingest: a private Kafka topic of "
        f"{dig(lt, 'ingest_beside_compaction', 'ingest_ticks') or 0:,} ticks (today's dates) "
        "drained by ticklake-ingest at its defaults into a copy of that lake, alone and while "
        "`ticklake-lake compact` rewrites the old day in another process started with it; "
        "the compaction overlaps the drain for as long as it runs (its seconds and the "
        "drain's are given beside the figure)."
    )


def backlog_figures(b: dict[str, Any] | None) -> dict[str, Any]:
    """``backlog.*``: bench_backlog_latency.py's figures (none when it has no results)."""
    if not b:
        return {}
    lat = b.get("latency_ms") or {}
    return {
        "backlog.ticks": b.get("backlog"),
        "backlog.idle_free_p50_ms": dig(lat, "idlefree_during", "p50_ms"),
        "backlog.idle_free_p99_ms": dig(lat, "idlefree_during", "p99_ms"),
        "backlog.idle_free_after_p50_ms": dig(lat, "idlefree_after", "p50_ms"),
        "backlog.idle_free_after_p99_ms": dig(lat, "idlefree_after", "p99_ms"),
        "backlog.idle_behind_p50_ms": dig(lat, "idlebehind_during", "p50_ms"),
        "backlog.idle_behind_p99_ms": dig(lat, "idlebehind_during", "p99_ms"),
        "backlog.rss_peak_mb": dig(b, "rss_mb", "peak_while_draining"),
        "backlog.rss_after_mb": dig(b, "rss_mb", "after_steady"),
    }


def load_outputs(results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Each scenario's own result file, for those that have one."""
    outputs: dict[str, dict[str, Any]] = {}
    for name in SCENARIOS:
        path = results / f"{name}.json"
        if path.exists():
            outputs[name] = json.loads(path.read_text())
    return outputs


def build_latest(outputs: dict[str, dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """``latest.json``: the run's facts, every figure by its dotted key, every output."""
    flat = figures(outputs)
    return {
        **{k: run.get(k) for k in RUN_KEYS},
        **nest(flat),
        "units": {k: UNITS.get(k, "") for k in flat},
        "scenarios": outputs,
    }


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the issue's keys as nested objects)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if abs(value) >= 1000:
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.3g}"
        return f"{text} {unit}".strip()
    return str(value)


def _ratio(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.3g}×"
    return "n/a"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**NOT met**")


def _le(a: Any, limit: float) -> bool | None:
    return None if not isinstance(a, (int, float)) else a <= limit


def _ge(a: Any, limit: float) -> bool | None:
    return None if not isinstance(a, (int, float)) else a >= limit


def repo_relative(command: str) -> str:
    """``command`` with absolute paths into a checkout's ``bench/results`` made relative:
    ``run_all.py`` passes absolute ``--json`` paths, which name the machine and folder the
    run came from rather than the file a reader finds in the repository."""
    return re.sub(r"(?<!\S)/\S*?/(bench/results/\S+)", r"\1", command)


def provenance_note(output: dict[str, Any] | None) -> str:
    """Where a scenario's figures come from: its command and the commit it measured."""
    if not output:
        return "**no results**"
    command = output.get("command") or dig(output, "setup", "command") or "(command not recorded)"
    command = repo_relative(command)
    commit = output.get("git_commit")
    if not commit:
        where = "**commit not recorded** (measured before results named their commit)"
    else:
        where = f"commit `{commit[:12]}`"
        if output.get("dirty"):
            where += " **DIRTY** (modified: " + ", ".join(output.get("dirty_files", [])) + ")"
    return f"`{command.strip()}`, {where}"


def header(latest: dict[str, Any]) -> list[str]:
    m = latest.get("machine") or {}
    commit = latest.get("git_commit") or ""
    lines = ["# Benchmarks", ""]
    stale = sorted(
        name
        for name, out in latest["scenarios"].items()
        if not out.get("git_commit") or out.get("git_commit") != commit or out.get("dirty")
    )
    if latest.get("dirty"):
        lines.extend([
            "> **DIRTY TREE: NOT FIGURES OF ANY COMMIT.** This run used `--allow-dirty` on "
            f"`{commit[:12]}` with modified files: "
            + ", ".join(f"`{p}`" for p in latest.get("dirty_files") or []) + ".",
            "",
        ])  # fmt: skip
    if stale:
        lines.extend([
            "> **Mixed provenance:** the figures of " + ", ".join(f"`{n}`" for n in stale)
            + f" were not measured on this run's clean commit `{commit[:12]}` (each table "
            "names the commit its figures come from).",
            "",
        ])  # fmt: skip
    for name, error in (latest.get("failed") or {}).items():
        lines.extend([f"> **scenario `{name}` failed in this run:** {error}", ""])
    load = ", ".join(f"{x:.2f}" for x in m.get("load_average_at_start", []))
    lines.extend([
        "Generated by `bench/report.py` from `bench/results/*.json` (written by `make bench`, "
        "or `make bench-quick` with shorter windows); `tests/test_benchmarks_doc.py` fails "
        "when this page or a generated block in another page differs from the results. "
        "Every figure is a median over repeated runs, measured beside its reference in the "
        "same run on the same machine; the load generators run on that machine too. Raw "
        "numbers, spreads and settings: `bench/results/latest.json` and the per-scenario "
        "files beside it.",
        "",
        f"Run: `{latest.get('command')}` (`{latest.get('argv')}`), mode "
        f"**{latest.get('mode')}**, commit `{commit[:12]}`"
        + (" **DIRTY**" if latest.get("dirty") else " (clean tree)")
        + f", {latest.get('total_seconds')} s in all. Machine: {m.get('cores')} cores "
        f"({m.get('cpu')}), {m.get('memory_gb')} GB, Python {m.get('python')}, Kafka "
        f"{m.get('kafka_version')}, {m.get('java')}; load average at start {load}.",
        "",
    ])  # fmt: skip
    return lines


Row = tuple[str, Any, str, Any, str, str]


def table_lines(rows: list[Row]) -> list[str]:
    lines = [
        "| figure | ticklake | reference | reference value | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, value, ref_name, ref_value, unit, target in rows:
        ratio = _ratio(value, ref_value) if ref_value is not None else "—"
        lines.append(
            f"| {name} | {_fmt(value, unit)} | {ref_name} | {_fmt(ref_value, unit)} | "
            f"{ratio} | {target} |"
        )
    return lines


def _commits_per_drain(ingest: dict[str, Any]) -> str:
    commits = dig(ingest, "results", "ticklake_table_commits", "median")
    if not isinstance(commits, (int, float)):
        return ""
    return f"{commits:,.0f} commits in a drain of {ingest.get('ticks', 0):,} ticks"


def _ge_ratio(value: Any, reference: Any, ratio: float) -> bool | None:
    """Is ``value`` at least ``ratio`` times ``reference`` (None when either is missing)?"""
    if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)):
        return None
    if reference <= 0:
        return None
    return bool(value >= ratio * reference)


def _tail_reference(i: dict[str, Any]) -> tuple[str, Any]:
    """What bounds the tail: the idle roll when the result records one, else the age roll."""
    idle = dig(i, "settings", "lake_roll_idle_seconds")
    if idle is not None:
        return "default lake roll when idle", idle
    return "default lake roll by age", dig(i, "settings", "lake_roll_seconds")


def _spread(summary: Any, unit: str = "") -> str:
    """``median (min – max)`` of a repeated figure, or just the median for one run."""
    median = dig(summary, "median")
    low, high = dig(summary, "min"), dig(summary, "max")
    if median is None:
        return "n/a"
    if low is None or high is None or low == high:
        return _fmt(median, unit)
    return f"{_fmt(median, unit)} ({_fmt(low)} – {_fmt(high)})"


def naive_label(output: dict[str, Any]) -> str:
    """Short name of the naive reference a result was measured against."""
    described = str(output.get("naive") or dig(output, "settings", "naive") or "")
    return "naive batch ingest" if "batch" in described else "naive ingest (older, per message)"


def ingest_method(i: dict[str, Any]) -> str:
    """How bench_ingest.py measured, from what its result file records."""
    s = i.get("settings") or {}
    roll_s, roll_rows = s.get("lake_roll_seconds"), s.get("lake_roll_rows")
    ticks, partitions = i.get("ticks") or 0, i.get("partitions") or 1
    per_partition = ticks // partitions
    idle_s, idle_rows = s.get("lake_roll_idle_seconds"), s.get("lake_roll_idle_min_rows")
    last = (
        f"the last, partial file of each partition when nothing new has arrived for "
        f"{_fmt(idle_s)} s (it holds at least {_fmt(idle_rows)} rows)"
        if idle_s is not None
        else "the last, partial file of each partition by age"
    )
    tail = (
        f"{per_partition:,} ticks per partition is below the row limit, so every file of "
        f"the drain rolls by age: the durable rate includes a fixed wait of up to {roll_s:g} s "
        "after the last record is processed (the tail row shows it)"
        if idle_s is None and isinstance(roll_rows, int) and isinstance(roll_s, (int, float))
        and per_partition < roll_rows
        else f"files roll by rows, and {last}; the tail row is the time from the last record "
        "processed until every row is durable"
    )  # fmt: skip
    return (
        f"Method: a backlog of {ticks:,} ticks ({i.get('symbols')} symbols, {partitions} "
        f"partitions) is drained by each system (repeats: {i.get('repeats')}), each in its "
        f"own process and consumer group. ticklake-ingest runs with {s.get('ingest', 'n/a')}. "
        "**Until "
        "durable** (the headline): from the first record consumed (ingest's `/metrics`) until "
        "an outside observer (this benchmark, polling every "
        f"{s.get('observer_poll_s', 'n/a')} s) sees every row of the backlog in committed "
        "(renamed) Parquet files of the lake *and* the consumer group's committed offsets at "
        "the end of every partition (Kafka admin API). At the defaults a partition's lake file "
        f"rolls at {_fmt(roll_rows)} rows or when its oldest row has waited {_fmt(roll_s)} s; "
        f"{tail}. **Processed** (secondary): first record consumed → every record decoded, "
        "its features computed, Redis written and its row buffered for the lake (not yet "
        "durable). The raw consumer only counts records (`getmany`, 20,000 a call). The "
        f"naive baseline, {s.get('naive', 'bench/naive_ingest.py')}, is timed like ticklake, "
        "until durable, by the same observer."
    )


def profile_method(prof: dict[str, Any]) -> str:
    """How bench_profile.py measured, from what its result file records."""
    return (
        f"Method: ticklake-ingest at its defaults drains a backlog of {_fmt(prof.get('ticks'))} "
        f"ticks ({prof.get('symbols')} symbols, {prof.get('partitions')} partitions) while "
        f"`py-spy record` samples its busy threads {_fmt(prof.get('py_spy_rate_hz'))} times a "
        "second, from the first record consumed until an outside observer sees every row "
        "durable. Each sample goes to the innermost stage its stack is in "
        "(`bench/profile_stages.py`: decode inside normalise counts as decode, the lake "
        "writer thread's Parquet encoding as Parquet); samples of the event loop waiting in "
        "epoll are left out. A stage's share of the samples times the process's CPU time "
        "over the same window (`/proc/PID/stat`) gives its CPU µs per tick; the stages add "
        "up to the first row. Two threads share the work (the event loop, and the lake "
        "writer for sorting, Parquet and the files), so CPU per tick is not wall time per "
        "tick. The reference is the CPU per tick of the raw counting consumer of the ingest "
        "table, draining the same backlog in the benchmark's own process. The step rows "
        "(`bench_profile.step_cost`) time, in the benchmark's process and without Kafka, "
        "one partition's processing step by its size: decode, sequence, features, columns, "
        "and the Redis write's preparation (merging, the JSON of the rows to write). A "
        "quiet feed is processed a few ticks a step, a backlog thousands a step; the "
        "difference per tick is the fixed cost of a step, which is what ingest's CPU at a "
        "steady low rate, and so its latency on a shared machine, is made of."
    )


TARGET_SCALEOUT = 1.7
"""Issue 15: two ingest replicas until durable at least 1.7× one (``bench_scaleout.py``)."""


def scaleout_method(so: dict[str, Any]) -> str:
    """How bench_scaleout.py measured, from what its result file records."""
    if not so:
        return (
            "No results yet: `uv run --frozen python bench/bench_scaleout.py` (part of "
            "`make bench`) writes `bench/results/scaleout.json`."
        )
    st = so.get("settings") or {}
    ticks, partitions = so.get("ticks") or 0, so.get("partitions") or 1
    return (
        f"Method: a backlog of {ticks:,} ticks ({so.get('symbols')} symbols, chosen so that "
        f"each of the {partitions} partitions owns as many under Kafka's partitioner) is "
        f"drained until durable by one ticklake-ingest and by {so.get('replicas')} in one "
        "new consumer group, sharing one lake, each held after its imports until all are "
        "imported and then let go at one moment, Redis emptied before every drain; the two "
        "drains of a "
        f"repeat run back to back, in alternating order (repeats: {so.get('repeats')}). "
        "**Until durable** is timed as in the ingest table: from the first record consumed "
        "by any replica until the outside observer sees every row in committed lake files "
        "and the group's committed offsets at the end of every partition; so the group's "
        "join (the first replica up takes every partition until the second joins, then "
        "the partitions move: the last row of the table) is inside the figure. Ingest "
        "runs at its defaults except `TICKLAKE_LAKE_ROLL_SECONDS="
        f"{_fmt(st.get('lake_roll_seconds'))}` (default "
        f"{_fmt(st.get('lake_roll_seconds_default'))} s; rows at the default "
        f"{_fmt(st.get('lake_roll_rows'))}): the short age ends the last partial file of "
        "every partition alike in both drains (the default idle roll would too, a second "
        "after the last record), so the ratio measures processing, not a roll timer. CPU is "
        "every replica's user + system time (`/proc`) from the first record to durable. "
        f"The machine has {so.get('cores')} cores, which the replicas share with the Kafka "
        "broker, Redis and this observer, so two replicas cannot get two cores to "
        "themselves: the ratio is what this machine gives, not what two machines would."
    )


def latency_definition(il: dict[str, Any]) -> str:
    return (
        "**Definition** (the one end-to-end latency of these pages): producer event time → "
        "the tick visible in Redis to the query API, seen by an outside observer. The "
        "producer (aiokafka, `linger_ms=0`, in the benchmark process) stamps each tick's "
        "`ts_ns` with the wall clock just before sending it. A separate observer process "
        "subscribes to the Redis channel that the query API's `/latest` mirror is fed by "
        "(ingest's Redis write publishes the rows it made visible, in the same script call): "
        "a row (symbol, seq) arriving at T shows every tick of that symbol up to seq visible "
        "by T, and each tick's latency is the first such T minus its `ts_ns`. "
        f"{_fmt(il.get('rate'))} ticks/s for {_fmt(il.get('seconds'))} s after a "
        f"{_fmt(il.get('warmup_s', 3.0))} s warm-up, repeats: {il.get('repeats')}, median of "
        "each percentile; ticklake-ingest at its defaults. References in the same run: "
        + (f"{il['kafka_reference']}; " if il.get("kafka_reference") else
           "a raw aiokafka consumer (event time → record in its hands) and ")
        + f"the naive ingest: {il.get('naive') or 'not described in its results'}."
    )  # fmt: skip


def kafka_own_label(il: dict[str, Any], older: str) -> str:
    """The name of ingest_latency's ``raw`` reference: Kafka's own e2e in results that
    describe it so, ``older`` (what earlier pages called it) in those that do not."""
    if il.get("kafka_reference"):
        return "Kafka's own e2e (paced aiokafka producer → consumer, event time → in hand)"
    return older


def backlog_rows(g: Callable[[str], Any]) -> list[Row]:
    """The table of bench_backlog_latency.py: idle symbols' latency during the drain."""
    free, behind = g("backlog.idle_free_p99_ms"), g("backlog.idle_behind_p99_ms")
    return [
        ("p99 event time → visible in Redis, idle symbol on a partition **without** backlog, "
         "during the drain", free, "same symbol after the drain, same run",
         g("backlog.idle_free_after_p99_ms"), "ms", f"≤ 50 ms: {_verdict(_le(free, 50))}"),
        ("p50 of the same", g("backlog.idle_free_p50_ms"), "same symbol after the drain",
         g("backlog.idle_free_after_p50_ms"), "ms", ""),
        ("p99, idle symbol on a partition **behind** backlog (Kafka's per-partition order), "
         "during the drain", behind, "idle symbol without backlog, same time", free, "ms",
         "none: it cannot overtake its partition"),
        ("p50 of the same", g("backlog.idle_behind_p50_ms"), "idle symbol without backlog",
         g("backlog.idle_free_p50_ms"), "ms", ""),
        ("ingest RSS, peak while draining", g("backlog.rss_peak_mb"), "—", None, "MB",
         f"≤ 300 MB: {_verdict(_le(g('backlog.rss_peak_mb'), 300))}"),
        ("ingest RSS after the drain, steady (backlog durable, idle feed only)",
         g("backlog.rss_after_mb"), "—", None, "MB",
         f"≤ 200 MB: {_verdict(_le(g('backlog.rss_after_mb'), 200))}"),
    ]  # fmt: skip


def backlog_method(b: dict[str, Any]) -> str:
    """How bench_backlog_latency.py measured, from what its result file records."""
    ticks, full = b.get("backlog") or 0, 1_000_000
    size = f"{ticks:,} ticks" + (
        f" (**smaller than the scenario's {full:,}: a quick run**)" if ticks < full else ""
    )
    sec = b.get("seconds") or {}
    return (
        f"Method: a backlog of {size} (`bench_ingest.make_ticks`, {b.get('symbols')} symbols) "
        f"is written to partitions 0–{(b.get('backlog_partitions') or 1) - 1} of a "
        f"{b.get('partitions')}-partition topic before ticklake-ingest starts with every "
        "setting at its default. Once ingest's `/metrics` show the drain begun (a first "
        "batch processed; start-up and recovery are not measured), this benchmark sends two "
        f"symbols with no backlog, {_fmt(b.get('rate_per_idle_symbol'))} ticks/s each, event "
        "time stamped just before sending: one on the last partition, which holds no "
        "backlog (the figure: anything it waits for is ingest's own head-of-line blocking), "
        "and one on partition 0, behind that partition's backlog (Kafka keeps order within "
        "a partition, so it waits for the backlog before it whatever ingest does). Latency "
        "is the definition above (outside observer on the Redis channel). *During the "
        f"drain*: ticks sent from {_fmt(b.get('warmup_s'))} s after the feed started until "
        "ingest's `/metrics` showed every backlog tick processed "
        f"({_fmt(sec.get('feed_to_drained'), 's')}; drain at "
        f"{_fmt(b.get('drain_ticks_per_s'), 'ticks/s')} from ingest's start); *after the "
        f"drain* (reference): from {_fmt(b.get('after_gap_s'))} s after it to the end. RSS "
        "(VmRSS) every 0.1 s: peak from ingest's start to the backlog processed; *after*: "
        "median over "
        f"{_fmt(sec.get('settle'), 's')} once every backlog row was durable (committed lake "
        f"files and offsets; {_fmt(sec.get('drained_to_durable'), 's')} after processing, the "
        "last files rolling by age). One run."
    )


HISTOGRAM_NOTE = (
    "**Ingest's own histogram** (`ticklake_ingest_e2e_latency_seconds`) is not this "
    "definition: it is taken inside ingest, event time → ingest's Redis write call returned "
    "(so it leaves out the hop to a subscriber, and is stamped after the call's reply rather "
    "than when the row became visible), and it is a Prometheus histogram with buckets at 5, "
    "10, 25, 50 ms …, whose percentiles are interpolated linearly inside a bucket: a p99 in "
    "the 10–25 ms bucket may read anywhere in it. The observer's figure, for its part, "
    "includes the delivery to a subscriber and that process's own wake-up on a shared "
    "machine, so either can be the higher. It is read here over the same window of "
    "the same run (bucket counts after the warm-up minus before) so the two can be compared, "
    "here and in the table of several rates below. Earlier reports set the observer of one "
    "scenario beside the histogram of another (different producers, different runs), which "
    "is why their figures disagreed."
)


def write_report(latest: dict[str, Any], plot_names: list[str]) -> str:
    def g(key: str) -> Any:
        return dig(latest, *key.split("."))

    s = latest["scenarios"]
    lines = header(latest)

    def section(title: str, name: str, rows: list[Row], *notes: str) -> None:
        lines.extend([f"## {title}", "", provenance_note(s.get(name)), ""])
        lines.extend(table_lines(rows))
        lines.append("")
        for note in notes:
            lines.extend([note, ""])

    section("Decode", "decode", [
        ("decode + validate, full tick, in batches of 1,000 (`decode_ticks`: how ingest "
         "decodes)", g("decode.batch_us_per_tick"), "stdlib json.loads",
         g("decode.stdlib_json_us_per_tick"), "µs/tick",
         f"≤ 1 µs: {_verdict(_le(g('decode.batch_us_per_tick'), 1.0))}"),
        ("decode + validate, full tick, one at a time (`decode_tick`)",
         g("decode.us_per_tick"), "stdlib json.loads", g("decode.stdlib_json_us_per_tick"),
         "µs/tick", ""),
    ], "Method: one full tick (every field, a book) decoded and validated over and over "
       "(counts in `decode.json`), median of the repeats. The batch row is how ingest "
       "decodes a partition's records: the payloads joined by newlines into one msgspec "
       "call, then each tick validated; a batch holding any payload that is not a "
       "canonical tick goes one by one, to its precise errors.")  # fmt: skip
    section("Produce", "produce", [
        ("one producer process, zstd", g("produce.ticks_per_s"),
         "Kafka ProducerPerformance, same payload bytes", g("produce.kafka_perf_msgs_per_s"),
         "ticks/s", f"≥ 100,000/s: {_verdict(_ge(g('produce.ticks_per_s'), 100_000))}"),
        ("one producer process, zstd", g("produce.ticks_per_s"),
         "ProducerPerformance, --record-size", g("produce.kafka_perf_record_size_msgs_per_s"),
         "ticks/s", ""),
    ])  # fmt: skip
    i = s.get("ingest") or {}
    durable = g("ingest.durable_ticks_per_s")
    section("Ingest throughput", "ingest", [
        ("**until durable** (headline): every row in a committed lake file, its offset "
         "committed; defaults, Redis on", durable,
         "raw aiokafka counting consumer", g("ingest.raw_consumer_ticks_per_s"), "ticks/s",
         "≥ 0.5× raw: " + _verdict(_ge_ratio(durable, g("ingest.raw_consumer_ticks_per_s"), 0.5))),
        ("processed (secondary; not yet durable)", g("ingest.processed_ticks_per_s"),
         "raw aiokafka counting consumer", g("ingest.raw_consumer_ticks_per_s"), "ticks/s", ""),
        ("until durable", durable, naive_label(i) + ", until durable",
         g("ingest.naive_durable_ticks_per_s"), "ticks/s", ""),
        ("until durable, with the Delta table commits (the default)", durable,
         "the same, `TICKLAKE_LAKE_TABLE=none` (files and checkpoints only)",
         g("ingest.tables_off_durable_ticks_per_s"), "ticks/s",
         "cost ≤ 10 %: " + _verdict(_ge_ratio(durable, g("ingest.tables_off_durable_ticks_per_s"),
                                             0.9))),
        ("one dataset's table commit of a flush (snapshot refresh + commit), mean",
         g("ingest.table_commit_mean_ms"), "—", None, "ms",
         _commits_per_drain(i)),
        ("tail: last record processed → durable", g("ingest.tail_s"),
         *_tail_reference(i), "s", ""),
        ("resident memory while draining (steady)", g("ingest.rss_steady_mb"), "—", None, "MB",
         f"≤ 300 MB: {_verdict(_le(g('ingest.rss_steady_mb'), 300))}"),
        ("resident memory, peak", g("ingest.rss_peak_mb"), "—", None, "MB", ""),
    ], ingest_method(i))  # fmt: skip
    prof = s.get("profile") or {}
    stage_rows: list[Row] = [
        ("all of ingest, first record consumed → every row durable",
         g("profile.ingest_cpu_us_per_tick"), "raw aiokafka counting consumer (fetch and "
         "record parsing only)", g("profile.raw_consumer_cpu_us_per_tick"), "CPU µs/tick", ""),
    ]  # fmt: skip
    total = g("profile.ingest_cpu_us_per_tick")
    for stage, us in (dig(prof, "results", "stage_us_per_tick") or {}).items():
        stage_rows.append((stage, us, "all of ingest", total, "CPU µs/tick", ""))
    steps = dig(prof, "results", "step_cost_by_ticks_per_step") or {}
    if steps:
        largest = max(steps, key=int)
        for size in sorted(steps, key=int):
            if size == largest:
                continue
            stage_rows.append((
                f"one partition's step of {int(size):,} ticks (no I/O)",
                g(f"profile.step_{size}_us_per_tick"),
                f"the same, {int(largest):,} ticks a step",
                g(f"profile.step_{largest}_us_per_tick"), "CPU µs/tick", "",
            ))  # fmt: skip
    section("Where ingest's time goes", "profile", stage_rows, profile_method(prof))
    so = s.get("scaleout") or {}
    n = so.get("replicas", "N")
    ratio = g("scaleout.ratio")
    section(f"Ingest scale-out: {n} replicas beside one", "scaleout", [
        (f"**until durable**, {n} replicas on {so.get('partitions', 'n/a')} partitions",
         g("scaleout.scaled_durable_ticks_per_s"), "one replica, same run, same backlog",
         g("scaleout.one_replica_durable_ticks_per_s"), "ticks/s",
         f"≥ {TARGET_SCALEOUT:g}× one replica: {_verdict(_ge(ratio, TARGET_SCALEOUT))} "
         f"(median of each repeat's pair: {_fmt(ratio)}×)"),
        (f"processed (not yet durable), {n} replicas", g("scaleout.scaled_processed_ticks_per_s"),
         "one replica", g("scaleout.one_replica_processed_ticks_per_s"), "ticks/s", ""),
        (f"ticks per ingest CPU-second (all replicas' threads), {n} replicas",
         g("scaleout.scaled_ticks_per_ingest_cpu_s"), "one replica",
         g("scaleout.one_replica_ticks_per_ingest_cpu_s"), "ticks/CPU-s", ""),
        (f"tail: last record processed → durable, {n} replicas", g("scaleout.scaled_tail_s"),
         "one replica", g("scaleout.one_replica_tail_s"), "s", ""),
        (f"first record consumed → every one of the {n} replicas holds partitions",
         g("scaleout.scaled_all_assigned_after_s"), "—", None, "s", ""),
    ], scaleout_method(so))  # fmt: skip
    il = s.get("ingest_latency") or {}
    rows: list[Row] = []
    for pct in ("p50", "p90", "p99"):
        target = {"p50": "≤ 5 ms", "p99": "≤ 25 ms"}.get(pct, "")
        value = g(f"ingest_latency.ticklake_{pct}_ms")
        if target:
            target += ": " + _verdict(_le(value, 5 if pct == "p50" else 25))
        rows.append((f"{pct} event time → visible in Redis", value,
                     kafka_own_label(il, "raw aiokafka consumer (event time → in hand)"),
                     g(f"ingest_latency.raw_{pct}_ms"), "ms", target))  # fmt: skip
    if il.get("kafka_reference"):
        # issue 15's targets, against Kafka's own p99 measured in the same run
        value, kafka = g("ingest_latency.ticklake_p99_ms"), g("ingest_latency.raw_p99_ms")
        ratio_ok = None if value is None or not kafka else value <= 3 * kafka
        rows.append(("p99 against Kafka's own e2e p99", value, "Kafka's own e2e p99", kafka,
                     "ms", f"≤ 3× Kafka's own: {_verdict(ratio_ok)}; ≤ 5 ms: "
                     f"{_verdict(_le(value, 5))}"))  # fmt: skip
    for pct in ("p50", "p99"):
        rows.append((f"{pct} event time → visible in Redis",
                     g(f"ingest_latency.ticklake_{pct}_ms"), naive_label(il),
                     g(f"ingest_latency.naive_{pct}_ms"), "ms", ""))  # fmt: skip
    for pct in ("p50", "p99"):
        rows.append((f"{pct} ingest's own histogram, same run (not this definition)",
                     g(f"ingest_latency.ingest_histogram_{pct}_ms"), "outside observer",
                     g(f"ingest_latency.ticklake_{pct}_ms"), "ms", ""))  # fmt: skip
    section("End-to-end latency at a steady rate", "ingest_latency", rows,
            latency_definition(il), HISTOGRAM_NOTE)  # fmt: skip
    rows = []
    for rate in LATENCY_RATES:
        # Kafka's own paced e2e (sub-ms) when the results have it; older ones: the Java tool
        own = g(f"latency.{rate}.kafka_own_p50_ms") is not None
        for pct, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
            target = ""
            if rate == 5000 and pct in ("p50", "p99"):
                limit = 5 if pct == "p50" else 25
                target = f"≤ {limit} ms: {_verdict(_le(g(f'latency.{rate}.{key}'), limit))}"
            reference = (
                (f"Kafka's own e2e {pct}", g(f"latency.{rate}.kafka_own_{key}"))
                if own
                else (f"Kafka EndToEndLatency {pct}", g(f"latency.{rate}.kafka_e2e_{key}"))
            )
            rows.append((f"{rate:,}/s {pct} event time → visible in Redis",
                         g(f"latency.{rate}.{key}"), *reference, "ms", target))  # fmt: skip
        for pct, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
            rows.append((f"{rate:,}/s {pct}, ingest's own histogram (not the definition)",
                         g(f"latency.{rate}.hist_{key}"), "outside observer",
                         g(f"latency.{rate}.{key}"), "ms", ""))  # fmt: skip
    counted = ", ".join(
        f"{rate:,}/s: {_fmt(g(f'latency.{rate}.observed_ticks'))} of "
        f"{_fmt(g(f'latency.{rate}.ticks_in_window'))}"
        for rate in LATENCY_RATES
    )
    lat = s.get("latency") or {}
    kafka_note = (
        f"Beside it: ingest's own histogram over the same window, and {lat['kafka_own_reference']} "
        "(`kafka_own_*`: the reference of the ratios; same producer and event time, so a ratio "
        "is what ingest, Redis and the observer's hop add). Kafka's "
        "`org.apache.kafka.tools.EndToEndLatency` (one record at a time, acks=all) is still run "
        "and kept in the results (`kafka_e2e_*`) but not shown: it prints its percentiles in "
        "whole milliseconds, truncated, so its p50 read 0 ms."
        if lat.get("kafka_own_reference") else
        "Beside it: ingest's own histogram over the same window, and "
        "Kafka's `org.apache.kafka.tools.EndToEndLatency` on the same broker, one record "
        "at a time with acks=all (the floor of broker and Java client for one record, "
        "not a paced run)."
    )  # fmt: skip
    section("Latency at several rates", "latency", rows,
            "Method: the definition above, with one ticklake-ingest at its defaults for the "
            "whole run and, for each offered rate, a `ticklake-producer simulate` process "
            "paced in 1 ms slices (event time is the slice's feed time, so a tick is up to "
            "1 ms old when sent) with symbols of its own. The same observer process records "
            "the channel's rows; after the run the topic is read back for every tick's "
            "(symbol, seq, event time), and only ticks whose event time falls in the "
            "measuring window after the warm-up count (ticks seen visible / ticks in the "
            f"window: {counted}). " + kafka_note)  # fmt: skip
    section("Memory", "latency", [
        ("ingest RSS after the 5k/s soak", g("memory.ingest_rss_mb"), "—", None, "MB",
         f"≤ 200 MB: {_verdict(_le(g('memory.ingest_rss_mb'), 200))}"),
    ])  # fmt: skip
    if s.get("lake_table"):  # absent until bench_lake_table.py has run
        lt = s["lake_table"]
        section("The lake as a table: compaction", "lake_table",
                lake_table_rows(g, lt), lake_table_method(lt))  # fmt: skip
    if s.get("backlog_latency"):  # absent until bench_backlog_latency.py has run
        section("Latency while a backlog drains", "backlog_latency",
                backlog_rows(g), backlog_method(s["backlog_latency"]))  # fmt: skip
    section("Latest", "query", [
        ("/latest p50 at 1,000 req/s", g("latest.p50_ms_at_1k"), "bare uvicorn p50",
         dig(s, "query", "latest", "bare", "fixed_1000rps", "p50_ms"), "ms", ""),
        ("/latest p99 at 1,000 req/s", g("latest.p99_ms_at_1k"), "bare uvicorn p99",
         g("latest.bare_p99_ms_at_1k"), "ms",
         f"≤ 2 ms: {_verdict(_le(g('latest.p99_ms_at_1k'), 2))}"),
        ("/latest max throughput", g("latest.max_rps"), "bare uvicorn constant",
         g("latest.bare_uvicorn_rps"), "req/s",
         "≥ 0.8× bare: "
         + _verdict(_ge_ratio(g("latest.max_rps"), g("latest.bare_uvicorn_rps"), 0.8))),
        # API keys on (the chart's default) beside the same API with them off
        ("/latest p50 at 1,000 req/s, API key", g("latest.auth_p50_ms_at_1k"), "keys off p50",
         g("latest.p50_ms_at_1k"), "ms", ""),
        ("/latest p99 at 1,000 req/s, API key", g("latest.auth_p99_ms_at_1k"), "keys off p99",
         g("latest.p99_ms_at_1k"), "ms", ""),
        ("/latest max throughput, API key", g("latest.auth_max_rps"), "keys off",
         g("latest.max_rps"), "req/s", ""),
    ])  # fmt: skip
    lg = dig(s, "query", "latest", "load_generator")
    if lg:
        lines.extend([f"Load generators: {lg}", ""])
    section("History", "query", [
        ("/bars 1m over 10M ticks (from ticks)", g("history.bars_1m_10m_s"),
         "same DuckDB query on the files", g("history.duckdb_direct_s"), "s",
         f"≤ 1 s: {_verdict(_le(g('history.bars_1m_10m_s'), 1))}; ≤ 1.5× direct: " + _verdict(
             None if g("history.bars_1m_10m_s") is None or not g("history.duckdb_direct_s")
             else g("history.bars_1m_10m_s") <= 1.5 * g("history.duckdb_direct_s"))),
        ("/bars 1m over 10M ticks (from ticks)", g("history.bars_1m_10m_s"),
         "pandas reading the same files", g("history.pandas_s"), "s", ""),
        ("/bars 1m from ingest's bars_1m dataset", g("history.bars_1m_from_bars_dataset_s"),
         "same DuckDB query on the tick files", g("history.duckdb_direct_s"), "s", ""),
        ("/ticks one symbol's day, first 50k-row page (Arrow)", g("history.ticks_one_day_s"),
         "same DuckDB query on the files", g("history.ticks_one_day_duckdb_direct_s"), "s", ""),
        ("/ticks one symbol's day, first 50k-row page (Arrow)", g("history.ticks_one_day_s"),
         "pandas reading the same files", g("history.ticks_one_day_pandas_s"), "s", ""),
        ("/ticks one symbol's day, 10th page (cursor)", g("history.ticks_tenth_page_s"),
         "same DuckDB query on the files", g("history.ticks_one_day_duckdb_direct_s"), "s", ""),
    ])  # fmt: skip
    if plot_names:
        lines.extend(["## Plots", ""])
        for name in plot_names:
            lines.extend([f"![{Path(name).stem}]({PLOTS.name}/{name})", ""])
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        lines.extend(["## Findings", "", notes.read_text().strip(), ""])
    return "\n".join(lines)


# --- generated blocks in other pages ------------------------------------------------------

Load = Callable[[str], dict[str, Any]]
"""Reads ``bench/results/<file>`` (empty when the file is missing)."""


def _source(load: Load, file: str) -> str:
    return f"`bench/results/{file}`: " + provenance_note(load(file))


def block_ingest_throughput(load: Load) -> str:
    i = load("ingest.json")
    r = i.get("results") or {}
    st = i.get("settings") or {}
    steady = dig(r, "ticklake_rss_steady_mb", "median")
    return "\n".join([
        f"From {_source(load, 'ingest.json')}. Method, ratios and targets: "
        "[benchmarks](benchmarks.md#ingest-throughput).",
        "",
        "| | ticks/s, median (min – max) |",
        "|---|---|",
        "| ticklake, **until durable** at the defaults, Redis on (every row in a committed "
        "lake file, its offset committed) | "
        f"**{_spread(r.get('ticklake_durable_ticks_per_s'))}** |",
        "| ticklake, processed (decoded, features, Redis written, row buffered for the lake; "
        f"not yet durable) | {_spread(r.get('ticklake_processed_ticks_per_s'))} |",
        "| raw aiokafka consumer that only counts (the client's ceiling) | "
        f"{_spread(r.get('raw_msgs_per_s'))} |",
        f"| {naive_label(i)} (`bench/naive_ingest.py`), until durable | "
        f"{_spread(r.get('naive_durable_ticks_per_s'))} |",
        "",
        f"Last record processed → durable: {_spread(r.get('ticklake_tail_s'), 's')} ("
        + (f"a partition idle for {_fmt(st.get('lake_roll_idle_seconds'), 's')} rolls its "
           "last file, then the writer finishes every partition's"
           if st.get("lake_roll_idle_seconds") is not None
           else f"the default roll by age is {_fmt(st.get('lake_roll_seconds'), 's')}")
        + "). Resident memory "
        f"while draining: {_fmt(steady, 'MB')} steady, "
        f"{_fmt(dig(r, 'ticklake_rss_peak_mb', 'median'), 'MB')} peak; target ≤ 300 MB "
        f"steady: {_verdict(_le(steady, 300))}.",
    ])  # fmt: skip


def block_ingest_latency(load: Load) -> str:
    il = load("ingest_latency.json")
    m = il.get("medians_ms") or {}
    names = {
        "ticklake": "ticklake (outside observer: event time → visible in Redis)",
        "raw": kafka_own_label(il, "raw aiokafka consumer (event time → record in hand)"),
        "naive": naive_label(il) + " (event time → its Redis pipeline returned)",
        "ingest_histogram": "ingest's own histogram, same ticklake runs (event time → "
        "Redis write returned, interpolated in buckets)",
    }
    lines = [
        f"From {_source(load, 'ingest_latency.json')}: {_fmt(il.get('rate'))} ticks/s for "
        f"{_fmt(il.get('seconds'))} s after a warm-up, median of repeats ({il.get('repeats')}). "
        "Definition and method: [benchmarks](benchmarks.md#end-to-end-latency-at-a-steady-rate).",
        "",
        "| | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for key, name in names.items():
        row = m.get(key) or {}
        lines.append(
            f"| {name} | {_fmt(row.get('p50'))} | {_fmt(row.get('p90'))} | {_fmt(row.get('p99'))} |"
        )
    return "\n".join(lines)


def block_sequencer_cost(load: Load) -> str:
    q = load("sequencer.json")
    st = q.get("setup") or {}
    lines = [
        f"From {_source(load, 'sequencer.json')}: {st.get('partitions')} partitions, a "
        f"{_fmt(st.get('ticks'))}-tick backlog and {_fmt(st.get('latency_rate'))} ticks/s "
        f"paced, medians of {st.get('repeats')} (min – max); latency is ingest's own "
        "histogram (event time → its Redis write returned). Both modes run with "
        "`TICKLAKE_LAKE_ROLL_SECONDS=1` (`bench_sequencer.mode_env`), not the default 30 s, "
        "so the throughput row compares the modes, not what a default drain reaches "
        "([benchmarks](benchmarks.md#ingest-throughput) has that).",
        "",
        "| | `keyed` | `sequence` | cost |",
        "|---|---|---|---|",
        f"| throughput, backlog → every row in the lake (ticks/s) | "
        f"{_spread(q.get('keyed_ticks_per_s'))} | {_spread(q.get('sequence_ticks_per_s'))} | "
        f"{_fmt(q.get('sequence_vs_keyed_throughput'))}× |",
    ]
    for pct in ("p50", "p99"):
        lines.append(
            f"| latency event time → Redis, {pct} (ms) | "
            f"{_fmt(dig(q, f'keyed_{pct}_ms', 'median'))} | "
            f"{_fmt(dig(q, f'sequence_{pct}_ms', 'median'))} | "
            f"+{_fmt(q.get(f'added_{pct}_ms'))} |"
        )
    return "\n".join(lines)


def block_sequencer_summary(load: Load) -> str:
    q = load("sequencer.json")
    st = q.get("setup") or {}
    return (
        f"On the shared 2-core machine, `sequence` reached "
        f"{_fmt(q.get('sequence_vs_keyed_throughput'))}× `keyed`'s backlog throughput "
        f"({_fmt(dig(q, 'sequence_ticks_per_s', 'median'))} vs "
        f"{_fmt(dig(q, 'keyed_ticks_per_s', 'median'))} ticks/s, medians of "
        f"{st.get('repeats')}) and added {_fmt(q.get('added_p50_ms'))} ms at the median and "
        f"{_fmt(q.get('added_p99_ms'))} ms at p99 to event time → Redis (ingest's histogram) "
        f"at {_fmt(st.get('latency_rate'))} ticks/s ({_source(load, 'sequencer.json')})."
    )


def block_produce(load: Load) -> str:
    p = load("produce.json")
    lines = [
        f"From {_source(load, 'produce.json')}: {_fmt(p.get('records_per_run'))} records × "
        f"{p.get('repeats')} repeats per client, mean encoded tick "
        f"{_fmt(p.get('mean_record_bytes'))} B, medians (min – max).",
        "",
        "| compression | ticklake producer (ticks/s) | Java, same bytes (rec/s) | "
        "Java, mean-size records (rec/s) | ratio vs same bytes |",
        "|---|---|---|---|---|",
    ]
    for compression in ("zstd", "lz4"):
        row = dig(p, "produce", compression)
        if row is None:
            lines.append(f"| {compression} | not measured in this run | | | |")
            continue
        lines.append(
            f"| {compression} | {_spread(row.get('ticklake_ticks_per_s'))} | "
            f"{_spread(row.get('java_same_payload_records_per_s'))} | "
            f"{_spread(row.get('java_record_size_records_per_s'))} | "
            f"{_fmt(row.get('ratio_vs_java_same_payload'))} |"
        )
    return "\n".join(lines)


CHART_VALUES = ROOT / "charts" / "ticklake" / "values.yaml"
SCALING_RATES = (1_000_000, 10_000_000)
"""Tick rates the scale-out model of ``docs/scaling.md`` sizes a deployment for."""


def scaling_inputs(load: Load) -> tuple[scaling_model.Measured, scaling_model.Assumptions] | None:
    """The model's measured inputs from the result files, with ingest's roll policy as the
    scale-out run recorded it; ``None`` while a figure is missing."""
    so, p, q = load("scaleout.json"), load("produce.json"), load("query.json")
    one = so.get("one_replica") or {}

    def med(key: str) -> Any:
        return dig(one, key, "median")

    def per_entry(value: Any) -> Any:
        entries = med("redis_tail_entries_per_tick")
        return value / entries if value is not None and entries else None

    ticks_files = med("lake_ticks_files")
    ticks = so.get("ticks")
    values = {
        "ingest_ticks_per_cpu_s": med("ticks_per_ingest_cpu_s"),
        "produce_ticks_per_s": dig(p, "produce", "zstd", "ticklake_ticks_per_s", "median"),
        "broker_produce_cpu_us_per_tick": dig(so, "fill", "broker_cpu_us_per_tick"),
        "broker_fetch_cpu_us_per_tick": med("broker_cpu_us_per_tick"),
        "topic_bytes_per_tick": dig(so, "fill", "topic_bytes_per_tick"),
        # per tail entry written: a live feed writes one per tick, a drain fewer
        "redis_cpu_us_per_tick": per_entry(med("redis_cpu_us_per_tick")),
        "redis_commands_per_tick": per_entry(med("redis_commands_per_tick")),
        "latest_rps_per_replica": dig(q, "latest", "latest_auth", "max_rps"),
    }
    bars = [med(f"lake_{d}_{what}") for d in ("bars_1s", "bars_1m") for what in ("files", "bytes")]
    if not ticks_files or not ticks or any(v is None for v in (*values.values(), *bars)):
        return None
    measured = scaling_model.Measured(
        **{k: float(v) for k, v in values.items()},
        lake_bytes_per_row=float(med("lake_ticks_bytes")) / float(ticks),
        # a flush writes its checkpoint and one file per dataset (the bench's ticks span
        # one UTC day); checkpoints are pruned as they age, so they are counted, not listed
        lake_puts_per_flush=(float(ticks_files) + bars[0] + bars[2]) / float(ticks_files) + 1,
        bars_bytes_per_flush=(bars[1] + bars[3]) / float(ticks_files),
    )
    st = so.get("settings") or {}
    assumptions = scaling_model.Assumptions(
        roll_rows=int(st.get("lake_roll_rows", 100_000)),
        roll_seconds=float(st.get("lake_roll_seconds_default", 30.0)),
    )
    return measured, assumptions


def chart_defaults() -> dict[str, int]:
    """The chart's ticks partitions, ingest maxReplicas and Kafka node count (values.yaml)."""
    import yaml

    values = yaml.safe_load(CHART_VALUES.read_text())
    return {
        "partitions": int(dig(values, "kafka", "strimzi", "topics", "ticks", "partitions")),
        "max_replicas": int(dig(values, "operator", "ingestScaler", "maxReplicas")),
        "brokers": int(dig(values, "kafka", "strimzi", "nodePool", "replicas")),
    }


def block_scaling(load: Load) -> str:
    inputs = scaling_inputs(load)
    sources = ", ".join(
        f"[`{f}`](../bench/results/{f}) ({provenance_note(load(f))})"
        for f in ("scaleout.json", "produce.json", "query.json")
    )
    if inputs is None:
        return (
            f"**Not computed: a figure is missing from the results** ({sources}). "
            "`make bench` measures them (the `scaleout` scenario is "
            "`bench/bench_scaleout.py`)."
        )
    m, a = inputs
    lines = [
        f"Measured (each a median; from {sources}):",
        "",
        "| per unit | figure | from |",
        "|---|---|---|",
        f"| ticks one ingest replica makes durable per CPU-second | "
        f"{_fmt(m.ingest_ticks_per_cpu_s)} | scaleout, one replica |",
        f"| ticks/s of one producer process (zstd) | {_fmt(m.produce_ticks_per_s)} | produce |",
        f"| broker CPU per tick appended, one copy | {_fmt(m.broker_produce_cpu_us_per_tick)} µs "
        "| scaleout, the fill |",
        f"| broker CPU per tick read by one consumer | {_fmt(m.broker_fetch_cpu_us_per_tick)} µs "
        "| scaleout, one replica's drain |",
        f"| log bytes per tick, one copy (uncompressed batches) | "
        f"{_fmt(m.topic_bytes_per_tick)} B | scaleout, the fill |",
        f"| Redis server CPU per tick of a live feed (per tail entry written) | "
        f"{_fmt(m.redis_cpu_us_per_tick)} µs | scaleout, one replica |",
        f"| Redis commands per tick of a live feed (script calls and the commands inside "
        f"them, per tail entry) | {_fmt(m.redis_commands_per_tick)} | scaleout, one replica |",
        f"| lake bytes per tick row (Parquet, zstd) | {_fmt(m.lake_bytes_per_row)} B | scaleout |",
        f"| objects written per flush of a partition | {_fmt(m.lake_puts_per_flush)} | scaleout |",
        f"| bar files' bytes per flush | {_fmt(m.bars_bytes_per_flush / 1e3)} kB | scaleout |",
        f"| `/latest` req/s of one query API process, API keys on | "
        f"{_fmt(m.latest_rps_per_replica)} | query |",
        "",
        f"Assumed (`bench/scaling_model.py`, `Assumptions`): headroom {a.headroom:.0%} of each "
        f"unit's measured capacity; {_fmt(a.ingest_cores_per_replica)} core per ingest "
        f"replica; brokers of {_fmt(a.broker_cores)} cores; replication factor "
        f"{a.replication_factor}; one core per Redis server; {_fmt(a.latest_requests_per_s)} "
        f"`/latest` req/s from clients; lake files roll at {_fmt(a.roll_rows)} rows or "
        f"{_fmt(a.roll_seconds)} s (ingest's defaults); `maxReplicas` {a.max_replicas} (the "
        "IngestScaler's default).",
        "",
    ]
    plans = [scaling_model.plan(rate, m, a) for rate in SCALING_RATES]
    lines.append("| | " + " | ".join(f"{_fmt(p.ticks_per_s)} ticks/s" for p in plans) + " |")
    lines.append("|---|" + "---|" * len(plans))

    def row(name: str, cell: Callable[[scaling_model.Plan], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(p) for p in plans) + " |")

    row("ingest CPU (cores)", lambda p: _fmt(p.ingest_cores))
    row("ingest replicas = Kafka partitions", lambda p: f"**{p.ingest_replicas}**")
    row("ticks/s per partition", lambda p: _fmt(p.per_partition_ticks_per_s))
    row("producer processes", lambda p: str(p.producers))
    row("broker CPU, RF copies appended and read (cores)", lambda p: _fmt(p.broker_cores))
    row("Kafka brokers", lambda p: f"**{p.brokers}**")
    row("log written, all copies (MB/s)", lambda p: _fmt(p.broker_write_mb_per_s))
    row("Redis CPU (cores)", lambda p: _fmt(p.redis_cores))
    row("Redis servers (one thread each)", lambda p: f"**{p.redis_shards}**")
    row("Redis commands/s from ingest", lambda p: _fmt(p.redis_commands_per_s))
    row("lake: rows per tick file", lambda p: _fmt(p.lake_rows_per_file))
    row("lake: tick object size (MB)", lambda p: _fmt(p.lake_tick_file_mb))
    row("lake: bar objects per flush (MB)", lambda p: _fmt(p.lake_bars_mb_per_flush))
    row("lake: flushes/s (all partitions)", lambda p: _fmt(p.lake_flushes_per_s))
    row("S3 PUTs/s", lambda p: f"**{_fmt(p.lake_puts_per_s)}**")
    row("query API replicas", lambda p: f"**{p.query_replicas}**")
    row("operator, `partitions` mode: replicas it sets", lambda p: str(p.operator_partitions_mode))
    row("operator, `lag` mode: steady lag per partition (half a file)",
        lambda p: _fmt(p.operator_lag_per_partition))  # fmt: skip
    row("operator, `lag` mode (threshold 1,000): replicas it sets",
        lambda p: str(p.operator_lag_mode))  # fmt: skip
    chart = chart_defaults()
    chart_a = scaling_model.Assumptions(
        **{**a.__dict__, "max_replicas": chart["max_replicas"]},
    )
    brokers = max(chart["brokers"], a.replication_factor)
    found = scaling_model.ceilings(m, chart_a, partitions=chart["partitions"], brokers=brokers)
    lines.extend([
        "",
        f"The chart's defaults ({chart['partitions']} partitions, `maxReplicas` "
        f"{chart['max_replicas']}, one Redis; {brokers} brokers of the size above): where each "
        "part is full, at 100 % of its measured capacity, lowest first:",
        "",
        "| part | full at (ticks/s) |",
        "|---|---|",
        *(f"| {c.what} | {_fmt(c.ticks_per_s)} |" for c in found),
        "",
        f"First to saturate: **{found[0].what}**, at {_fmt(found[0].ticks_per_s)} ticks/s.",
    ])  # fmt: skip
    return "\n".join(lines)


def block_recovery(load: Load) -> str:
    r = load("recovery.json")
    lines = [
        f"From {_source(load, 'recovery.json')}: load average {_fmt(r.get('load_avg_at_start'))} "
        f"at the start; target ≤ {_fmt(r.get('target_s'))} s.",
        "",
        "| membership | median | min | max | runs | imports done (`starting`) | connected "
        "(`consuming`) | partitions assigned and recovered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"static": "static (`TICKLAKE_GROUP_INSTANCE_ID`)", "dynamic": "dynamic (none)"}
    for mode, name in names.items():
        row = r.get(mode)
        if not row:
            lines.append(f"| {name} | not measured | | | | | | |")
            continue
        phases = row.get("phases_median_s") or {}
        runs = ", ".join(_fmt(x) for x in row.get("runs_s", []))
        lines.append(
            f"| {name} | **{_fmt(row.get('median_s'), 's')}** | {_fmt(row.get('min_s'), 's')} | "
            f"{_fmt(row.get('max_s'), 's')} | {runs} | {_fmt(phases.get('starting'), 's')} | "
            f"{_fmt(phases.get('consuming'), 's')} | "
            f"{_fmt(phases.get('partitions assigned'), 's')} |"
        )
    return "\n".join(lines)


BLOCKS: dict[str, tuple[str, Callable[[Load], str]]] = {
    "recovery": ("docs/ingest.md", block_recovery),
    "ingest-throughput": ("docs/ingest.md", block_ingest_throughput),
    "ingest-latency": ("docs/ingest.md", block_ingest_latency),
    "sequencer-cost": ("docs/ingest.md", block_sequencer_cost),
    "sequencer-summary": ("docs/architecture.md", block_sequencer_summary),
    "produce": ("docs/producer.md", block_produce),
    "scaling": ("docs/scaling.md", block_scaling),
}
"""Each generated block: the page it sits in and what renders it from the results."""


def begin(name: str) -> str:
    return f"<!-- bench:begin {name} (generated by bench/report.py from bench/results) -->"


def end(name: str) -> str:
    return f"<!-- bench:end {name} -->"


class MissingMarkers(ValueError):
    """A page lost a block's markers: put them back where the figures belong."""


def fill(text: str, name: str, body: str) -> str:
    """``text`` with the region of block ``name`` replaced by ``body``."""
    if text.count(begin(name)) != 1 or text.count(end(name)) != 1:
        raise MissingMarkers(f"block {name!r}: expected one {begin(name)!r} and one {end(name)!r}")
    head, rest = text.split(begin(name), 1)
    _, tail = rest.split(end(name), 1)
    return f"{head}{begin(name)}\n{body}\n{end(name)}{tail}"


# --- the whole set of generated files -----------------------------------------------------


def rendered(root: Path, run: dict[str, Any]) -> dict[Path, str]:
    """Every generated text file (``latest.json``, ``docs/benchmarks.md``, pages with
    blocks) as the results under ``root`` give it; plots are not compared (images)."""
    results = root / "bench" / "results"
    latest = build_latest(load_outputs(results), run)

    def load(file: str) -> dict[str, Any]:
        path = results / file
        return json.loads(path.read_text()) if path.exists() else {}

    out: dict[Path, str] = {
        results / "latest.json": json.dumps(latest, indent=2, default=str) + "\n",
        root / "docs" / "benchmarks.md": write_report(latest, planned_plots(latest)),
    }
    for name, (page, render) in BLOCKS.items():
        path = root / page
        text = out.get(path, path.read_text())
        out[path] = fill(text, name, render(load))
    return out


def stale(root: Path) -> list[Path]:
    """Generated files under ``root`` that differ from what their results give."""
    run = json.loads((root / "bench" / "results" / "latest.json").read_text())
    return [
        path
        for path, text in rendered(root, run).items()
        if not path.exists() or path.read_text() != text
    ]


def write_all(run: dict[str, Any], root: Path = ROOT) -> None:
    """Write every generated file from the results and ``run`` (``run_all.py``)."""
    for path, text in rendered(root, run).items():
        path.write_text(text)
    latest = json.loads((root / "bench" / "results" / "latest.json").read_text())
    out_dir = root / "docs" / PLOTS.name
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plots(latest, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a page is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    latest_path = args.root / "bench" / "results" / "latest.json"
    if args.check:
        try:
            behind = stale(args.root)
        except MissingMarkers as e:
            print(e, file=sys.stderr)
            return 1
        for path in behind:
            print(
                f"{path} differs from what bench/results/*.json give: run "
                "`uv run --frozen python bench/report.py` (or re-measure with make bench)",
                file=sys.stderr,
            )
        return 1 if behind else 0
    run = json.loads(latest_path.read_text())
    write_all({k: run.get(k) for k in RUN_KEYS}, args.root)
    return 0


def throughput_bars(latest: dict[str, Any]) -> list[tuple[str, float]]:
    bars = [
        ("produce\nticklake", dig(latest, "produce", "ticks_per_s")),
        ("produce\nKafka Java", dig(latest, "produce", "kafka_perf_msgs_per_s")),
        ("ingest ticklake\nuntil durable", dig(latest, "ingest", "durable_ticks_per_s")),
        ("ingest\nraw consumer", dig(latest, "ingest", "raw_consumer_ticks_per_s")),
        ("ingest naive\nuntil durable", dig(latest, "ingest", "naive_durable_ticks_per_s")),
    ]
    return [(n, float(v)) for n, v in bars if isinstance(v, (int, float))]


def planned_plots(latest: dict[str, Any]) -> list[str]:
    """The names :func:`write_plots` writes for these results (the report links them)."""
    names = []
    if any(dig(latest, "latency", str(rate), "p50_ms") is not None for rate in LATENCY_RATES):
        names.append("latency_vs_rate.png")
    if throughput_bars(latest):
        names.append("throughput.png")
    return names


def write_plots(latest: dict[str, Any], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[Path] = []
    rates: list[int] = []
    series: dict[str, list[float | None]] = {"p50": [], "p99": [], "p99.9": [], "kafka p99": []}
    for rate in LATENCY_RATES:
        row = dig(latest, "latency", str(rate)) or {}
        if row.get("p50_ms") is None:
            continue
        rates.append(rate)
        series["p50"].append(row.get("p50_ms"))
        series["p99"].append(row.get("p99_ms"))
        series["p99.9"].append(row.get("p999_ms"))
        series["kafka p99"].append(row.get("kafka_e2e_p99_ms"))
    if rates:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, values in series.items():
            pts = [(r, v) for r, v in zip(rates, values, strict=True) if v is not None]
            if pts:
                style = "--" if name.startswith("kafka") else "-"
                ax.plot([r for r, _ in pts], [v for _, v in pts], style, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (ticks/s)")
        ax.set_ylabel("event time → visible in Redis (ms, observer)")
        ax.set_title("ticklake end-to-end latency vs offered rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = out_dir / "latency_vs_rate.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    bars = throughput_bars(latest)
    if bars:
        fig, ax = plt.subplots(figsize=(7, 4))
        colors = ["#2a7" if "ticklake" in n else "#888" for n, _ in bars]
        ax.bar([n for n, _ in bars], [v for _, v in bars], color=colors)
        ax.set_ylabel("ticks/s (median)")
        ax.set_title("throughput: ticklake (green) vs references (grey)")
        for idx, (_, v) in enumerate(bars):
            ax.text(idx, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        fig.tight_layout()
        path = out_dir / "throughput.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


if __name__ == "__main__":
    sys.exit(main())

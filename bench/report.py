"""Turn the scenario outputs into ``latest.json``, ``docs/benchmarks.md`` and plots.

Kept apart from ``run_all.py`` so the report can be rebuilt from saved results
(``run_all.py --report-only``) and the mapping from each scenario's own JSON
to the suite's dotted keys sits in one place.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

UNITS: dict[str, str] = {
    "produce.ticks_per_s": "ticks/s",
    "produce.kafka_perf_msgs_per_s": "records/s",
    "ingest.ticks_per_s": "ticks/s",
    "ingest.raw_consumer_ticks_per_s": "ticks/s",
    "ingest.naive_baseline_ticks_per_s": "ticks/s",
    "memory.ingest_rss_mb": "MB",
    "latest.p50_ms_at_1k": "ms",
    "latest.p99_ms_at_1k": "ms",
    "latest.bare_p99_ms_at_1k": "ms",
    "latest.max_rps": "requests/s",
    "latest.bare_uvicorn_rps": "requests/s",
    "latest.auth_p50_ms_at_1k": "ms",
    "latest.auth_p99_ms_at_1k": "ms",
    "latest.auth_max_rps": "requests/s",
    "history.bars_1m_10m_s": "s",
    "history.duckdb_direct_s": "s",
    "history.pandas_s": "s",
    "history.ticks_one_day_s": "s",
    "history.ticks_tenth_page_s": "s",
    "history.ticks_one_day_duckdb_direct_s": "s",
    "decode.us_per_tick": "µs/tick",
    "ingest.durable_ticks_per_s": "ticks/s",
    "ingest.rss_peak_mb": "MB",
    "memory.ingest_rss_peak_mb": "MB",
    "ingest_latency.ticklake_p50_ms": "ms",
    "ingest_latency.ticklake_p99_ms": "ms",
    "ingest_latency.raw_p50_ms": "ms",
    "ingest_latency.raw_p99_ms": "ms",
    "ingest_latency.naive_p50_ms": "ms",
    "ingest_latency.naive_p99_ms": "ms",
    "decode.stdlib_json_us_per_tick": "µs/tick",
}
LATENCY_RATES = (1000, 5000, 20000)


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
    keys = ("decode", "produce", "ingest", "latency", "query", "ingest_latency")
    d, p, i, lat, q, il = (outputs.get(k, {}) for k in keys)
    f: dict[str, Any] = {
        "decode.us_per_tick": dig(d, "decode", "us_per_tick"),
        "decode.stdlib_json_us_per_tick": dig(d, "decode", "stdlib_json_us_per_tick"),
        "produce.ticks_per_s": first(
            dig(p, "produce", "zstd", "ticklake_ticks_per_s", "median"),
            dig(p, "produce", "ticks_per_s"),
        ),
        "produce.kafka_perf_msgs_per_s": first(
            dig(p, "produce", "zstd", "java_same_payload_records_per_s", "median"),
            dig(p, "produce", "kafka_perf_msgs_per_s"),
        ),
        "produce.kafka_perf_record_size_msgs_per_s": dig(
            p, "produce", "zstd", "java_record_size_records_per_s", "median"
        ),
        "ingest.ticks_per_s": dig(i, "results", "ticklake_ticks_per_s", "median"),
        "ingest.durable_ticks_per_s": dig(i, "results", "ticklake_durable_ticks_per_s", "median"),
        "ingest.raw_consumer_ticks_per_s": dig(i, "results", "raw_msgs_per_s", "median"),
        "ingest.naive_baseline_ticks_per_s": dig(i, "results", "naive_ticks_per_s", "median"),
        "ingest.rss_peak_mb": dig(i, "results", "ticklake_rss_peak_mb", "median"),
        "memory.ingest_rss_mb": dig(lat, "memory", "ingest_rss_mb"),
        "memory.ingest_rss_peak_mb": dig(lat, "memory", "ingest_rss_mb_peak"),
        "ingest_latency.ticklake_p50_ms": dig(il, "medians_ms", "ticklake", "p50"),
        "ingest_latency.ticklake_p99_ms": dig(il, "medians_ms", "ticklake", "p99"),
        "ingest_latency.raw_p50_ms": dig(il, "medians_ms", "raw", "p50"),
        "ingest_latency.raw_p99_ms": dig(il, "medians_ms", "raw", "p99"),
        "ingest_latency.naive_p50_ms": dig(il, "medians_ms", "naive", "p50"),
        "ingest_latency.naive_p99_ms": dig(il, "medians_ms", "naive", "p99"),
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
    }
    for rate in LATENCY_RATES:
        row = first(dig(lat, "latency", str(rate)), dig(lat, str(rate)))
        for key in ("p50_ms", "p99_ms", "p999_ms", "kafka_e2e_p50_ms", "kafka_e2e_p99_ms",
                    "kafka_e2e_p999_ms", "achieved_rate"):  # fmt: skip
            f[f"latency.{rate}.{key}"] = dig(row, key)
            if key.endswith("_ms"):
                UNITS[f"latency.{rate}.{key}"] = "ms"
    return f


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


def build_latest(
    outputs: dict[str, dict[str, Any]], machine: dict[str, Any], commit: str, *, quick: bool
) -> dict[str, Any]:
    flat = figures(outputs)
    return {
        "machine": machine,
        "git_commit": commit,
        "mode": "quick" if quick else "full",
        **nest(flat),
        "units": {k: UNITS.get(k, "") for k in flat},
        "scenarios": outputs,
    }


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


def write_report(latest: dict[str, Any], plots: list[Path], doc_dir: Path) -> str:
    m = latest["machine"]

    def g(key: str) -> Any:
        return dig(latest, *key.split("."))

    s = latest["scenarios"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run_all.py`; `make bench-quick` for short windows). "
        "Every figure is a median over repeated runs, measured beside its reference in the "
        "same run on the same machine; the load generators run on that machine too. Raw "
        "numbers, spreads and settings: `bench/results/latest.json` and the per-scenario "
        "files beside it.",
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gb')} GB, "
        f"Python {m.get('python')}, Kafka {m.get('kafka_version')}, {m.get('java')}. "
        f"Commit `{latest['git_commit'][:12]}`, mode **{latest['mode']}**, load average at "
        f"start {', '.join(f'{x:.2f}' for x in m.get('load_average_at_start', []))}.",
        "",
    ]

    def table(title: str, command: str, rows: list[tuple[str, Any, str, Any, str, str]]) -> None:
        lines.extend([f"## {title}", "", f"`{command}`", ""])
        lines.append("| figure | ticklake | reference | reference value | ratio | target |")
        lines.append("|---|---|---|---|---|---|")
        for name, value, ref_name, ref_value, unit, target in rows:
            lines.append(
                f"| {name} | {_fmt(value, unit)} | {ref_name} | {_fmt(ref_value, unit)} | "
                f"{_ratio(value, ref_value) if ref_value is not None else '—'} | {target} |"
            )
        lines.append("")

    def failed(name: str) -> None:
        error = dig(s, name, "error")
        if error:
            lines.extend([f"> scenario `{name}` failed: {error}", ""])

    table("Decode", "uv run python bench/bench_decode.py", [
        ("decode + validate, full tick", g("decode.us_per_tick"), "stdlib json.loads",
         g("decode.stdlib_json_us_per_tick"), "µs/tick",
         f"≤ 2 µs: {_verdict(_le(g('decode.us_per_tick'), 2.0))}"),
    ])  # fmt: skip
    failed("decode")
    table("Produce", "uv run python bench/bench_produce.py", [
        ("one producer process, zstd", g("produce.ticks_per_s"),
         "Kafka ProducerPerformance, same payload bytes", g("produce.kafka_perf_msgs_per_s"),
         "ticks/s", f"≥ 100,000/s: {_verdict(_ge(g('produce.ticks_per_s'), 100_000))}"),
        ("one producer process, zstd", g("produce.ticks_per_s"),
         "ProducerPerformance, --record-size", g("produce.kafka_perf_record_size_msgs_per_s"),
         "ticks/s", ""),
    ])  # fmt: skip
    failed("produce")
    table("Ingest", "uv run python bench/bench_ingest.py", [
        ("backlog drain, lake + Redis on", g("ingest.ticks_per_s"),
         "raw aiokafka counting consumer", g("ingest.raw_consumer_ticks_per_s"), "ticks/s",
         f"≥ 50,000/s: {_verdict(_ge(g('ingest.ticks_per_s'), 50_000))}"),
        ("until every row is durable in the lake", g("ingest.durable_ticks_per_s"),
         "raw aiokafka counting consumer", g("ingest.raw_consumer_ticks_per_s"), "ticks/s",
         f"≥ 50,000/s: {_verdict(_ge(g('ingest.durable_ticks_per_s'), 50_000))}"),
        ("backlog drain, lake + Redis on", g("ingest.ticks_per_s"), "naive per-message ingest",
         g("ingest.naive_baseline_ticks_per_s"), "ticks/s", ""),
    ])  # fmt: skip
    failed("ingest")
    table("Ingest latency at 5,000 ticks/s (independent observer)",
          "uv run python bench/bench_ingest_latency.py", [
        ("p50 event time → visible in Redis", g("ingest_latency.ticklake_p50_ms"),
         "raw aiokafka consumer (event time → in hand)", g("ingest_latency.raw_p50_ms"), "ms",
         f"≤ 5 ms: {_verdict(_le(g('ingest_latency.ticklake_p50_ms'), 5))}"),
        ("p99 event time → visible in Redis", g("ingest_latency.ticklake_p99_ms"),
         "raw aiokafka consumer", g("ingest_latency.raw_p99_ms"), "ms",
         f"≤ 25 ms: {_verdict(_le(g('ingest_latency.ticklake_p99_ms'), 25))}"),
        ("p50 event time → visible in Redis", g("ingest_latency.ticklake_p50_ms"),
         "naive per-message ingest", g("ingest_latency.naive_p50_ms"), "ms", ""),
        ("p99 event time → visible in Redis", g("ingest_latency.ticklake_p99_ms"),
         "naive per-message ingest", g("ingest_latency.naive_p99_ms"), "ms", ""),
    ])  # fmt: skip
    failed("ingest_latency")
    rows = []
    for rate in LATENCY_RATES:
        for pct, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
            target = ""
            if rate == 5000 and key == "p50_ms":
                target = f"≤ 5 ms: {_verdict(_le(g(f'latency.{rate}.{key}'), 5))}"
            if rate == 5000 and key == "p99_ms":
                target = f"≤ 25 ms: {_verdict(_le(g(f'latency.{rate}.{key}'), 25))}"
            rows.append((f"{rate:,}/s {pct} event time → Redis", g(f"latency.{rate}.{key}"),
                         f"Kafka EndToEndLatency {pct}", g(f"latency.{rate}.kafka_e2e_{key}"),
                         "ms", target))  # fmt: skip
    table("Latency", "uv run python bench/bench_latency.py", rows)
    failed("latency")
    table("Memory", "uv run python bench/bench_latency.py", [
        ("ingest RSS after the 5k/s soak", g("memory.ingest_rss_mb"), "—", None, "MB",
         f"≤ 300 MB: {_verdict(_le(g('memory.ingest_rss_mb'), 300))}"),
    ])  # fmt: skip
    table("Latest", "uv run python bench/bench_query.py", [
        ("/latest p50 at 1,000 req/s", g("latest.p50_ms_at_1k"), "bare uvicorn p50",
         dig(s, "query", "latest", "bare", "fixed_1000rps", "p50_ms"), "ms", ""),
        ("/latest p99 at 1,000 req/s", g("latest.p99_ms_at_1k"), "bare uvicorn p99",
         g("latest.bare_p99_ms_at_1k"), "ms",
         f"≤ 2 ms: {_verdict(_le(g('latest.p99_ms_at_1k'), 2))}"),
        ("/latest max throughput", g("latest.max_rps"), "bare uvicorn constant",
         g("latest.bare_uvicorn_rps"), "req/s",
         "≥ 0.5× bare: " + _verdict(
             None if g("latest.max_rps") is None or not g("latest.bare_uvicorn_rps")
             else g("latest.max_rps") >= 0.5 * g("latest.bare_uvicorn_rps"))),
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
    table("History", "uv run python bench/bench_query.py", [
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
    failed("query")
    if plots:
        lines.extend(["## Plots", ""])
        for plot in plots:
            lines.append(f"![{plot.stem}]({plot.relative_to(doc_dir).as_posix()})")
            lines.append("")
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        lines.extend(["## Findings", "", notes.read_text().strip(), ""])
    return "\n".join(lines)


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
        ax.set_ylabel("event time → Redis latency (ms)")
        ax.set_title("ticklake end-to-end latency vs offered rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = out_dir / "latency_vs_rate.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    bars = [
        ("produce\nticklake", dig(latest, "produce", "ticks_per_s")),
        ("produce\nKafka Java", dig(latest, "produce", "kafka_perf_msgs_per_s")),
        ("ingest\nticklake", dig(latest, "ingest", "ticks_per_s")),
        ("ingest\nraw consumer", dig(latest, "ingest", "raw_consumer_ticks_per_s")),
        ("ingest\nnaive", dig(latest, "ingest", "naive_baseline_ticks_per_s")),
    ]
    bars = [(n, v) for n, v in bars if isinstance(v, (int, float))]
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

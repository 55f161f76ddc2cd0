"""Decode plus validation cost per tick, beside stdlib ``json.loads`` of the same payload.

    uv run python bench/bench_decode.py [--repeats 7] [--n 200000] [--json OUT]

Target (foundation issue): at most 2 µs per tick on the 2-core reference machine.
Reports the median and spread of ``--repeats`` timed runs of ``--n`` decodes each,
for three payloads (full book, no book, legacy shape) and the stdlib reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import provenance

from ticklake.core.tick import Tick, decode_tick, decode_ticks, encode_tick

FULL = encode_tick(
    Tick(
        symbol="AAPL", ts_ns=1_735_828_200_123_456_789, price=189.1, size=100.0,
        exchange="XNAS", seq=123_456, bid=189.09, ask=189.11, bid_size=300.0, ask_size=200.0,
    )
)  # fmt: skip
NO_BOOK = encode_tick(
    Tick(symbol="MSFT", ts_ns=1_735_828_200_123_456_789, price=421.5, size=10.0,
         exchange="XNAS", seq=9)
)  # fmt: skip
LEGACY = (
    b'{"symbol": "AAPL", "price": 189.1, "size": 100, "exchange": "XNAS",'
    b' "ts": "2025-01-02T14:30:00.123456+00:00"}'
)


def per_call_us(fn: Callable[[Any], object], payload: Any, n: int, repeats: int) -> list[float]:
    for _ in range(n // 10):  # warm-up: caches, branch predictors, the symbol memo
        fn(payload)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn(payload)
        samples.append((time.perf_counter_ns() - start) / n / 1000)
    return samples


BATCH = 1_000
"""Payloads per decode_ticks call: about what one partition brings to a step in a drain."""


def per_tick_in_batches_us(payload: bytes, n: int, repeats: int) -> list[float]:
    """µs per tick of :func:`decode_ticks` over batches of ``BATCH`` payloads (how ingest
    decodes a partition's records)."""
    calls = max(1, n // BATCH)
    return [us / BATCH for us in per_call_us(decode_ticks, [payload] * BATCH, calls, repeats)]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": round(statistics.median(samples), 3),
        "min_us": round(min(samples), 3),
        "max_us": round(max(samples), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty) if args.json else {}

    results = {
        "ticklake_full_book": summary(per_call_us(decode_tick, FULL, args.n, args.repeats)),
        "ticklake_no_book": summary(per_call_us(decode_tick, NO_BOOK, args.n, args.repeats)),
        "ticklake_legacy": summary(per_call_us(decode_tick, LEGACY, args.n, args.repeats)),
        "ticklake_full_book_batch": summary(per_tick_in_batches_us(FULL, args.n, args.repeats)),
        "stdlib_json_full_book": summary(per_call_us(json.loads, FULL, args.n, args.repeats)),
    }
    us_per_tick = results["ticklake_full_book"]["median_us"]
    reference = results["stdlib_json_full_book"]["median_us"]
    report = {
        "decode": {
            "us_per_tick": us_per_tick,
            "batch_us_per_tick": results["ticklake_full_book_batch"]["median_us"],
            "batch_size": BATCH,
            "stdlib_json_us_per_tick": reference,
            "ratio_vs_stdlib_json": round(us_per_tick / reference, 3),
            "target_us": 2.0,
            "meets_target": us_per_tick <= 2.0,
            "payload_bytes": len(FULL),
            "repeats": args.repeats,
            "n_per_repeat": args.n,
            "detail": results,
        },
        "python": platform.python_version(),
        "command": "uv run python bench/bench_decode.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    print(f"{'payload':<24}{'median µs':>10}{'min':>8}{'max':>8}")
    for name, row in results.items():
        print(f"{name:<24}{row['median_us']:>10.3f}{row['min_us']:>8.3f}{row['max_us']:>8.3f}")
    print(
        f"decode+validate {us_per_tick:.3f} µs/tick vs stdlib json.loads {reference:.3f} µs "
        f"(ratio {us_per_tick / reference:.2f}); target ≤ 2 µs: "
        f"{'met' if us_per_tick <= 2.0 else 'NOT met'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

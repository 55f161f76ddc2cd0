"""``ticklake-query``: ask a running API from a shell, or run one.

::

    ticklake-query latest AAPL [MSFT ...]
    ticklake-query bars AAPL --interval 1m [--start ... --end ...]
    ticklake-query ticks AAPL --start 2025-01-02T14:30:00Z --limit 100
    ticklake-query asof AAPL --ts 2025-01-02T14:30:00Z
    ticklake-query symbols
    ticklake-query serve [--host H] [--port P]   # the API; other settings from TICKLAKE_*

The client commands talk HTTP to ``--url`` (default ``http://127.0.0.1:8000``,
or ``TICKLAKE_QUERY_URL``) and print the JSON answer; the exit status is 0 on
success, 1 for a 4xx/5xx answer (its message goes to stderr) and 2 when the
API cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticklake-query",
        description="Ask a running ticklake query API from a shell, or run one.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("TICKLAKE_QUERY_URL", DEFAULT_URL),
        help=f"base URL of the query API (default {DEFAULT_URL})",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    sub = parser.add_subparsers(dest="command", required=True)

    latest = sub.add_parser("latest", help="newest tick of one or more symbols")
    latest.add_argument("symbols", nargs="+")

    bars = sub.add_parser("bars", help="OHLCV bars")
    bars.add_argument("symbol")
    bars.add_argument("--interval", choices=["1s", "1m", "5m", "1h"], default="1m")
    bars.add_argument("--start")
    bars.add_argument("--end")

    ticks = sub.add_parser("ticks", help="tick history (one page)")
    ticks.add_argument("symbol")
    ticks.add_argument("--start")
    ticks.add_argument("--end")
    ticks.add_argument("--limit", type=int)
    ticks.add_argument("--cursor")

    asof = sub.add_parser("asof", help="last tick at or before a time")
    asof.add_argument("symbols", nargs="+")
    asof.add_argument("--ts", required=True)

    sub.add_parser("symbols", help="known symbols")
    serve = sub.add_parser("serve", help="run the API (settings from TICKLAKE_* variables)")
    serve.add_argument("--host", help="bind address (default TICKLAKE_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="port (default TICKLAKE_HTTP_PORT, 8000)")
    return parser


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The path and query parameters a client command asks for (pure)."""

    def pick(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None}

    if args.command == "latest":
        if len(args.symbols) == 1:
            return f"/latest/{quote(args.symbols[0], safe='')}", {}
        return "/latest", {"symbols": ",".join(args.symbols)}
    if args.command == "bars":
        return f"/bars/{quote(args.symbol, safe='')}", pick(
            interval=args.interval, start=args.start, end=args.end
        )
    if args.command == "ticks":
        return f"/ticks/{quote(args.symbol, safe='')}", pick(
            start=args.start, end=args.end, limit=args.limit, cursor=args.cursor
        )
    if args.command == "asof":
        if len(args.symbols) == 1:
            return f"/asof/{quote(args.symbols[0], safe='')}", {"ts": args.ts}
        return "/asof", {"ts": args.ts, "symbols": ",".join(args.symbols)}
    if args.command == "symbols":
        return "/symbols", {}
    raise ValueError(f"{args.command} is not a client command")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from ticklake.query.server import serve
        from ticklake.query.settings import QuerySettings

        overrides = {"http_host": args.host, "http_port": args.port}
        serve(QuerySettings(**{k: v for k, v in overrides.items() if v is not None}))
        return 0
    path, params = request_for(args)
    try:
        response = httpx.get(args.url.rstrip("/") + path, params=params, timeout=args.timeout)
    except httpx.HTTPError as e:
        print(f"ticklake-query: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    if response.status_code >= 400:
        print(f"ticklake-query: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

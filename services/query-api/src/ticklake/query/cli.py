"""``ticklake-query``: ask a running API from a shell, or run one.

::

    ticklake-query latest AAPL [MSFT ...]
    ticklake-query bars AAPL --interval 1m [--start ... --end ...]
    ticklake-query ticks AAPL --start 2025-01-02T14:30:00Z --limit 100
    ticklake-query asof AAPL --ts 2025-01-02T14:30:00Z
    ticklake-query symbols
    ticklake-query serve [--host H] [--port P]   # the API; other settings from TICKLAKE_*
    ticklake-query keys create --name desk-a --symbols 'AAPL,MSFT,EUR/*' [--rate 20 --burst 40]
    ticklake-query keys list
    ticklake-query keys revoke <key id>

The client commands talk HTTP to ``--url`` (default ``http://127.0.0.1:8000``,
or ``TICKLAKE_QUERY_URL``) with the API key ``TICKLAKE_API_KEY`` (if set) and
print the JSON answer; the exit status is 0 on success, 1 for a 4xx/5xx answer
(its message goes to stderr) and 2 when the API cannot be reached.

The ``keys`` commands edit the key file (``--file``, default
``TICKLAKE_AUTH_KEYS_FILE``): ``create`` prints the new key's token once (only
its hash is stored), ``list`` never shows a token, ``revoke`` keeps the key on
record as revoked. A running API applies the change within a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
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

    keys = sub.add_parser("keys", help="create, list and revoke API keys (edits the key file)")
    keys.add_argument(
        "--file",
        type=Path,
        default=os.environ.get("TICKLAKE_AUTH_KEYS_FILE"),
        help="the key file (default TICKLAKE_AUTH_KEYS_FILE)",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="add a key; prints its token once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--symbols", required=True,
        help="comma-separated symbols or patterns it may read (AAPL,EUR/*; * = all)",
    )  # fmt: skip
    create.add_argument("--rate", type=float, help="requests a second (default: the API's)")
    create.add_argument("--burst", type=int, help="requests at once (default: the API's)")
    create.add_argument("--json", action="store_true", help="print the key and token as JSON")
    keys_sub.add_parser("list", help="the keys (ids, names, symbols; never tokens)")
    revoke = keys_sub.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
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
        from pydantic import ValidationError

        from ticklake.query.auth.api_keys import KeyFileError
        from ticklake.query.server import serve
        from ticklake.query.settings import QuerySettings

        overrides = {"http_host": args.host, "http_port": args.port}
        try:
            serve(QuerySettings(**{k: v for k, v in overrides.items() if v is not None}))
        except ValidationError as e:
            problems = "; ".join(str(err["msg"]) for err in e.errors())
            print(f"ticklake-query serve: bad settings: {problems}", file=sys.stderr)
            return 2
        except KeyFileError as e:
            print(f"ticklake-query serve: {e}", file=sys.stderr)
            return 2
        return 0
    if args.command == "keys":
        return keys_command(args)
    path, params = request_for(args)
    token = os.environ.get("TICKLAKE_API_KEY")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            args.url.rstrip("/") + path, params=params, headers=headers, timeout=args.timeout
        )
    except httpx.HTTPError as e:
        print(f"ticklake-query: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    if response.status_code >= 400:
        print(f"ticklake-query: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def keys_command(args: argparse.Namespace) -> int:
    from ticklake.query.auth import api_keys
    from ticklake.query.auth.entitlements import BadPattern

    if args.file is None:
        print("ticklake-query keys: give --file or set TICKLAKE_AUTH_KEYS_FILE", file=sys.stderr)
        return 2
    try:
        if args.keys_command == "create":
            symbols = [s for s in args.symbols.split(",") if s.strip()]
            key, token = api_keys.create(
                args.file, args.name, symbols, rate_per_s=args.rate, burst=args.burst
            )
            if args.json:
                print(orjson.dumps({"id": key.id, "name": key.name, "symbols": key.symbols,
                                    "token": token}).decode())  # fmt: skip
            else:
                print(f"created key {key.id} ({key.name}) for {','.join(key.symbols)}")
                print(f"token (shown once, store it now): {token}")
            return 0
        if args.keys_command == "list":
            for key in api_keys.read(args.file).keys:
                state = f"revoked {key.revoked}" if key.revoked else "active"
                limit = f" rate {key.rate_per_s:g}/s" if key.rate_per_s else ""
                limit += f" burst {key.burst}" if key.burst else ""
                print(f"{key.id}  {key.name}  {','.join(key.symbols)}  {state}{limit}")
            return 0
        revoked = api_keys.revoke(args.file, args.key_id)
        print(f"revoked key {revoked.id} ({revoked.name}) at {revoked.revoked}")
        return 0
    except (api_keys.KeyFileError, BadPattern, ValueError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) else str(e)
        print(f"ticklake-query keys: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``ticklake-query``: the client commands against a running API."""

from __future__ import annotations

import json
import time

import pytest

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.query.cli import build_parser, main, request_for


@pytest.mark.parametrize(
    ("argv", "path", "params"),
    [
        (["latest", "AAPL"], "/latest/AAPL", {}),
        (["latest", "EUR/USD"], "/latest/EUR%2FUSD", {}),
        (["latest", "AAPL", "MSFT"], "/latest", {"symbols": "AAPL,MSFT"}),
        (["bars", "AAPL", "--interval", "5m"], "/bars/AAPL", {"interval": "5m"}),
        (["ticks", "AAPL", "--limit", "5"], "/ticks/AAPL", {"limit": 5}),
        (["asof", "AAPL", "--ts", "now"], "/asof/AAPL", {"ts": "now"}),
        (["asof", "A", "B", "--ts", "now"], "/asof", {"ts": "now", "symbols": "A,B"}),
        (["symbols"], "/symbols", {}),
    ],
)
def test_commands_map_to_requests(argv: list[str], path: str, params: dict) -> None:
    assert request_for(build_parser().parse_args(argv)) == (path, params)


def test_latest_and_bars_against_the_api(
    api: RunningApi, ingest: IngestLike, capsys: pytest.CaptureFixture[str]
) -> None:
    symbol = new_symbol()
    rows = ingest.ingest(
        make_ticks(symbol, 30, start_ns=time.time_ns() - 600 * NS, step_ns=10 * NS)
    )
    assert main(["--url", api.url, "latest", symbol]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tick"]["price"] == rows[-1]["price"]
    assert main(["--url", api.url, "bars", symbol, "--interval", "1m"]) == 0
    bars = json.loads(capsys.readouterr().out)["bars"]
    assert sum(b["tick_count"] for b in bars) == 30


def test_errors_and_unreachable_servers_have_exit_codes(
    api: RunningApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", api.url, "latest", new_symbol("NOPE")]) == 1
    assert "404" in capsys.readouterr().err
    assert main(["--url", "http://127.0.0.1:9", "--timeout", "2", "symbols"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_serve_runs_the_api_and_stops_cleanly_on_sigterm(
    query_redis_url: str, redis_password: str, tmp_path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from ticklake.devstack.ports import free_port, port_open, wait_until

    port = free_port()
    keys = tmp_path / "keys.json"
    env = {
        **os.environ,
        "TICKLAKE_REDIS_URL": query_redis_url,
        "TICKLAKE_REDIS_PASSWORD": redis_password,
        "TICKLAKE_LAKE_URI": str(tmp_path / "lake"),
        "TICKLAKE_LOG_LEVEL": "WARNING",
        "TICKLAKE_AUTH_KEYS_FILE": str(keys),
    }
    cli = [sys.executable, "-m", "ticklake.query.cli"]
    # Authentication is on by default: without a key file the API does not start,
    # and says why.
    refused = subprocess.run([*cli, "serve", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert f"{keys}: no such key file" in refused.stderr
    made = subprocess.run([*cli, "keys", "create", "--name", "t", "--symbols", "*", "--json"],
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    token = json.loads(made.stdout)["token"]
    proc = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env)
    try:
        wait_until(lambda: port_open(port), 30, "ticklake-query serve")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        assert httpx.get(f"http://127.0.0.1:{port}/symbols").status_code == 401
        authorized = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"http://127.0.0.1:{port}/symbols", headers=authorized).status_code == 200
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down (lifespan included), then re-raises the signal it
        # caught so a supervisor sees how the process ended.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()

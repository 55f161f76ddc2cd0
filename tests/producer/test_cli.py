"""``ticklake-producer`` as a user runs it: flags, exit codes, progress, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from producer_kit import consume_all, unique_topic

from ticklake.core.tick import decode_tick
from ticklake.devstack.ports import free_port
from ticklake.producer import cli

T0 = 1_764_000_000_000_000_000


def _run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticklake.producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(),
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}


def test_flags_map_onto_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKLAKE_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    args = cli.build_parser().parse_args(
        ["simulate", "--rate", "5000", "--symbols", "AAPL,MSFT", "--duration", "60"]
    )
    settings = cli.settings_from_args(args)
    assert settings.feed_rate == 5000
    assert settings.symbol_list() == ["AAPL", "MSFT"]
    assert settings.feed_duration_s == 60
    assert settings.kafka_bootstrap_servers == "kafka:9092"  # env still applies
    args = cli.build_parser().parse_args(["replay", "ticks.parquet", "--speed", "10"])
    settings = cli.settings_from_args(args)
    assert (settings.feed_mode, settings.replay_file, settings.replay_speed) == (
        "replay",
        "ticks.parquet",
        10,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--rate", "-5"], "feed_rate"),
        (["simulate", "--symbols", "AAPL,not a ticker"], "not a valid ticker"),
        (["simulate", "--burst-every", "1", "--burst-duration", "2"], "must be shorter"),
    ],
)
def test_invalid_flags_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_record_to_parquet_needs_no_broker(tmp_path: Path) -> None:
    out = tmp_path / "feed.parquet"
    done = _run_cli("simulate", "--count", "5000", "--seed", "3", "--start-ns", str(T0),
                    "--to-parquet", str(out), "--bootstrap-servers", "127.0.0.1:1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert pq.read_metadata(out).num_rows == 5000
    assert f"ticklake-producer: 5,000 ticks written to {out} in " in done.stderr


def test_fatal_bad_row_exits_2_with_file_and_line(kafka_bootstrap: str, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(
        f"symbol,ts_ns,price,size,exchange\nAAPL,{T0},190.0,1,XNAS\nAAPL,{T0 + 1},190.0,-1,XNAS\n"
    )
    done = _run_cli("replay", str(path), "--as-fast-as-possible", "--on-bad-row", "fail",
                    "--bootstrap-servers", kafka_bootstrap, "--topic", unique_topic())  # fmt: skip
    assert done.returncode == cli.EXIT_BAD_INPUT
    assert f"{path}:3: negative_size" in done.stderr


def test_sigterm_flushes_everything_then_exits_cleanly(kafka_bootstrap: str) -> None:
    topic = unique_topic()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticklake.producer.cli", "simulate", "--rate", "3000",
         "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--partitions", "2",
         "--serve-http", "--http-port", str(port), "--progress-interval", "0.5"],
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "producer never became healthy"
            time.sleep(0.2)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "| rate " in stderr and "errors 0" in stderr  # the progress line
    summary = stderr.strip().splitlines()[-1]
    assert (
        summary.startswith("ticklake-producer: ")
        and " 0 failed, 0 unconfirmed, 0 not sent" in summary
    )
    sent = int(summary.split()[1].replace(",", ""))
    assert sent > 3000
    records = asyncio.run(consume_all(kafka_bootstrap, topic))
    assert len(records) == sent


def test_serve_takes_everything_from_the_environment(kafka_bootstrap: str) -> None:
    topic = unique_topic()
    env = {
        **_clean_env(),
        "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKLAKE_TICKS_TOPIC": topic,
        "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "TICKLAKE_TOPIC_PARTITIONS": "2",
        "TICKLAKE_FEED_SYMBOLS": "AAPL,MSFT,NVDA",
        "TICKLAKE_FEED_RATE": "0",
        "TICKLAKE_FEED_COUNT": "1500",
        "TICKLAKE_HTTP_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ticklake.producer.cli", "serve"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "serving /healthz and /metrics" in done.stderr
    records = asyncio.run(consume_all(kafka_bootstrap, topic))
    assert len(records) == 1500
    assert {decode_tick(r.value).symbol for r in records} == {"AAPL", "MSFT", "NVDA"}

"""Recorded simulations replay to exactly the ticks the simulator produced."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticklake.producer.recording import TickFileWriter
from ticklake.producer.replay import read_ticks
from ticklake.producer.simulator import MarketSimulator, build_market

T0 = 1_764_000_000_000_000_000


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_recorded_file_replays_to_identical_ticks(tmp_path: Path, suffix: str) -> None:
    sim = MarketSimulator(build_market(), seed=21)
    path = tmp_path / f"feed{suffix}"
    writer = TickFileWriter(path)
    expected = []
    for i in range(5):
        window = sim.generate(333, T0 + i * 10_000_000, T0 + (i + 1) * 10_000_000)
        writer.write(window)
        expected += window.to_ticks()
    writer.close()
    assert writer.rows == 1665
    replayed = [t for chunk in read_ticks(path, on_bad_row="fail") for t in chunk.ticks]
    assert replayed == expected


def test_only_parquet_or_csv(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        TickFileWriter(tmp_path / "feed.json")

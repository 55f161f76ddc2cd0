"""The short fault suite (``make chaos`` runs the long one): a spread feed, two replicas.

Runs ``bench/chaos.py`` as its own process: ticks of each symbol spread at random
over 4 unkeyed partitions (ingest in ``TICKLAKE_ORDERING=sequence``), a clean
single-replica run, then two replicas with SIGKILLs, then two replicas with an
exception injected into the flush path (first retried in place, then killing the
flush task so the process exits). Its checker (DuckDB over the lake, pandas over the
produced ticks, plain Redis reads; none of ticklake's code) decides: nothing lost,
nothing doubled, every tick and feature column equal to the clean run's, EMAs and
1-minute bars equal to pandas', Redis latest current.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_fault_suite_loses_nothing_doubles_nothing_and_matches_a_clean_run(
    tmp_path: Path,
) -> None:
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "chaos.py"),
            "--ticks", "6000", "--kill9-ticks", "6000", "--rate", "3000", "--kills", "4",
            "--fault-s", "6", "--feeds", "spread", "--faults", "kill9,flush_exception",
            "--json", str(out),
            # its result goes to tmp_path, not bench/results: a work tree with
            # uncommitted changes is what this test checks
            "--allow-dirty",
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    scenarios = json.loads(out.read_text())["scenarios"]
    assert set(scenarios) == {"spread/clean", "spread/kill9", "spread/flush_exception"}
    for name, result in scenarios.items():
        print(name, json.dumps(result))  # the whole verdict, for a failure's report
        assert result["lost"] == 0, (name, result)
        assert result["duplicated"] == 0, (name, result)
        assert result["ema_rows_differing_from_pandas"] == 0, (name, result)
        assert result["bars_1m_differing_from_pandas"] == 0, (name, result)
        assert result["redis_latest_stale_symbols"] == 0, (name, result)
        if name != "spread/clean":
            assert result["feature_rows_differing_from_clean"] == 0, (name, result)
            assert result["columns_compared_with_clean"] >= 20, (name, result)
    # the faults happened and were seen
    assert scenarios["spread/kill9"]["process_restarts"] >= 1
    injected = scenarios["spread/flush_exception"]
    assert 1 in injected["exit_codes"], injected  # the flush task's death stopped the process
    assert any("InjectedFault" in reason for reason in injected["stall_reasons_seen"]), injected

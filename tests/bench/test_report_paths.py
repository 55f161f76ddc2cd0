"""The report prints each scenario's command with repository paths, not the machine's."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from report import repo_relative  # noqa: E402


def test_absolute_result_paths_become_repository_paths() -> None:
    run_all = "uv run python bench/bench_query.py --repeats 3 --json /work/wt/bench/results/q.json"
    assert repo_relative(run_all) == (
        "uv run python bench/bench_query.py --repeats 3 --json bench/results/q.json"
    )
    # other absolute paths, and paths already relative, are left as they are
    kept = "uv run python bench/x.py --data /tmp/cache --json bench/results/x.json"
    assert repo_relative(kept) == kept

"""The decision and the partition maths stay pure: no kopf, Kafka or Kubernetes imports.

That is what lets them be tested exhaustively without a cluster; a handler
convenience that pulls I/O into them would quietly end that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "operator" / "src" / "ticklake" / "operator"
FORBIDDEN = (
    "kopf",
    "aiokafka",
    "kubernetes_asyncio",
    "prometheus_client",
    "pydantic",
    "ticklake.operator.",
)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module + ("." if node.module == "ticklake.operator" else ""))
    return names


@pytest.mark.parametrize("module", ["decision.py", "partitions.py"])
def test_pure_modules_import_no_io(module: str) -> None:
    bad = {n for n in _imports(PKG / module) for f in FORBIDDEN if n == f or n.startswith(f)}
    assert not bad, f"{module} imports {bad}"

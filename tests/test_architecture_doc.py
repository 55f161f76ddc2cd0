"""docs/architecture.md's picture and module list match the code.

Every ``.py`` the picture names exists, and the module list names exactly the modules of
core, the three services and the operator: adding, renaming or removing one fails here
until the page says where it sits.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = {
    "core": ROOT / "libs/core/src/ticklake/core",
    "producer": ROOT / "services/producer/src/ticklake/producer",
    "ingest": ROOT / "services/ingest/src/ticklake/ingest",
    "query": ROOT / "services/query-api/src/ticklake/query",
    "operator": ROOT / "operator/src/ticklake/operator",
}


def _blocks(section: str) -> list[str]:
    text = DOC.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```\n(.*?)```", text[start : end if end > 0 else None], re.S)


def _on_disk() -> set[tuple[str, str]]:
    return {
        (package, path.relative_to(root).as_posix())
        for package, root in PACKAGES.items()
        for path in root.rglob("*.py")
        if path.name != "__init__.py"
    }


def test_the_module_list_names_every_module_and_no_other() -> None:
    _picture, modules = _blocks("Where a tick goes")
    listed = {
        (line.split()[0], line.split()[1])
        for line in modules.splitlines()
        if line.strip() and line.split()[0] in PACKAGES
    }
    on_disk = _on_disk()
    assert not on_disk - listed, f"modules missing from docs/architecture.md: {on_disk - listed}"
    assert not listed - on_disk, f"listed but not in the code: {listed - on_disk}"


def test_every_module_the_picture_names_exists() -> None:
    picture = _blocks("Where a tick goes")[0]
    names = set(re.findall(r"[\w/]+\.py", picture))
    paths = {path for _, path in _on_disk()}
    assert names, "the picture names no module"
    missing = {n for n in names if n not in paths and not any(p.endswith("/" + n) for p in paths)}
    assert not missing, f"the picture names modules that do not exist: {missing}"

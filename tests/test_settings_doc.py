"""docs/settings.md lists every setting of every service, generated from the classes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_settings_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_secret_is_masked_when_settings_are_printed() -> None:
    from ticklake.ingest.settings import IngestSettings

    settings = IngestSettings(redis_password="hunter2", s3_secret_access_key="s3cret")
    printed = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in printed
    assert "s3cret" not in printed


SETTINGS_CLASSES = [
    ("ticklake.producer.settings", "ProducerSettings"),
    ("ticklake.ingest.settings", "IngestSettings"),
    ("ticklake.ingest.settings", "LakeMaintenanceSettings"),
    ("ticklake.query.settings", "QuerySettings"),
    ("ticklake.operator.settings", "OperatorSettings"),
]
SECRET_NAME = re.compile(r"password|secret|token|access_key|private")


def _settings_class(module: str, name: str) -> type:
    import importlib

    cls: type = getattr(importlib.import_module(module), name)
    return cls


@pytest.mark.parametrize(("module", "name"), SETTINGS_CLASSES)
def test_every_field_named_like_a_secret_is_a_secret_str(module: str, name: str) -> None:
    """A new password or key field typed ``str`` would be printed, logged and dumped: this
    fails first."""
    from pydantic import SecretStr

    cls = _settings_class(module, name)
    for field, info in cls.model_fields.items():  # type: ignore[attr-defined]
        if SECRET_NAME.search(field) and not field.endswith("_file"):
            assert SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr, (
                f"{name}.{field} holds a secret: type it SecretStr"
            )


@pytest.mark.parametrize(("module", "name"), SETTINGS_CLASSES)
def test_no_settings_dump_shows_a_secret(
    module: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "TICKLAKE_REDIS_PASSWORD": "redis-hunter2",
        "TICKLAKE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE42",
        "TICKLAKE_S3_SECRET_ACCESS_KEY": "s3-secret-42",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TICKLAKE_AUTH_ENABLED", "false")
    settings = _settings_class(module, name)()
    dumps = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for text in dumps:
        assert not [v for v in secrets.values() if v in text], text


def test_ingest_print_settings_masks_secrets() -> None:
    env = {**os.environ, "TICKLAKE_REDIS_PASSWORD": "redis-hunter2",
           "TICKLAKE_S3_SECRET_ACCESS_KEY": "s3-secret-42"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "ticklake.ingest.cli", "--print-settings"],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"redis_password": "**********"' in result.stdout
    assert "redis-hunter2" not in result.stdout + result.stderr
    assert "s3-secret-42" not in result.stdout + result.stderr

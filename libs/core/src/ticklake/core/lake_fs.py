"""Open the lake root as a pyarrow filesystem, for a local path or ``s3://``.

Ingest (the writer) and the query API (the reader) both call
:func:`open_lake` with their :class:`~ticklake.core.settings.LakeFields`, so a
lake URI means the same thing to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from ticklake.core.settings import LakeFields


@dataclass(frozen=True, slots=True)
class Lake:
    """A lake root: the filesystem and the base path inside it (no scheme)."""

    fs: pafs.FileSystem
    base: str
    uri: str

    def path(self, relative: str) -> str:
        """Filesystem path of ``relative`` (``/``-separated) below the root."""
        return f"{self.base.rstrip('/')}/{relative}"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)


def open_lake(fields: LakeFields) -> Lake:
    """Resolve ``fields.lake_uri`` to a :class:`Lake`. Creates a local root if missing."""
    uri = fields.lake_uri
    if uri.startswith("s3://"):
        bucket_and_prefix = uri[len("s3://") :].strip("/")
        s3 = pafs.S3FileSystem(
            access_key=(
                fields.s3_access_key_id.get_secret_value() if fields.s3_access_key_id else None
            ),
            secret_key=(
                fields.s3_secret_access_key.get_secret_value()
                if fields.s3_secret_access_key
                else None
            ),
            endpoint_override=fields.s3_endpoint_url,
            region=fields.s3_region,
            scheme="http" if (fields.s3_endpoint_url or "").startswith("http://") else "https",
        )
        return Lake(fs=s3, base=bucket_and_prefix, uri=uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"lake_uri {uri!r}: only local paths, file:// and s3:// are supported")
    local = Path(uri.removeprefix("file://")).expanduser().resolve()
    local.mkdir(parents=True, exist_ok=True)
    return Lake(fs=pafs.LocalFileSystem(), base=str(local), uri=str(local))

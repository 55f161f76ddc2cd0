"""Open the lake root as a pyarrow filesystem, for a local path or ``s3://``.

Ingest (the writer) and the query API (the reader) both call
:func:`open_lake` with their :class:`~ticklake.core.settings.LakeFields`, so a
lake URI means the same thing to both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow.fs as pafs

from ticklake.core.settings import LakeFields


@dataclass(frozen=True, slots=True)
class Lake:
    """A lake root: the filesystem and the base path inside it (no scheme)."""

    fs: pafs.FileSystem
    base: str
    uri: str
    encrypted_put: Callable[[str, bytes], None] | None = None
    """Writes one object (a :meth:`path`) with the server-side encryption of
    ``TICKLAKE_S3_SSE``; None: writers use :attr:`fs`. pyarrow's S3 filesystem cannot
    set encryption headers, so these PUTs go through obstore."""
    storage_options: dict[str, str] = field(default_factory=dict)
    """The same store for delta-rs (the table log, :mod:`ticklake.core.lake_table`)."""

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
        put = _encrypted_put(fields, bucket_and_prefix.split("/", 1)[0])
        return Lake(
            fs=s3,
            base=bucket_and_prefix,
            uri=uri,
            encrypted_put=put,
            storage_options=_delta_storage_options(fields),
        )
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"lake_uri {uri!r}: only local paths, file:// and s3:// are supported")
    local = Path(uri.removeprefix("file://")).expanduser().resolve()
    local.mkdir(parents=True, exist_ok=True)
    return Lake(fs=pafs.LocalFileSystem(), base=str(local), uri=str(local))


def _delta_storage_options(fields: LakeFields) -> dict[str, str]:
    options = {"AWS_REGION": fields.s3_region}
    if fields.s3_access_key_id and fields.s3_secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = fields.s3_access_key_id.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = fields.s3_secret_access_key.get_secret_value()
    if fields.s3_endpoint_url:
        options["AWS_ENDPOINT_URL"] = fields.s3_endpoint_url
        if fields.s3_endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    # A commit is a put-if-absent of the next log entry; with conditional puts (S3 since
    # 2024, MinIO, R2) two writers cannot both win a version, with no lock service.
    options["aws_conditional_put"] = "etag"
    if fields.s3_sse != "none":
        options["aws_server_side_encryption"] = fields.s3_sse
        if fields.s3_sse_kms_key_id:
            options["aws_sse_kms_key_id"] = fields.s3_sse_kms_key_id
    return options


def _encrypted_put(fields: LakeFields, bucket: str) -> Callable[[str, bytes], None] | None:
    """A PUT with ``x-amz-server-side-encryption`` (and the KMS key), or None when
    ``s3_sse`` is none. obstore is imported here only: readers never need it."""
    if fields.s3_sse == "none":
        return None
    from obstore import put as obstore_put
    from obstore.store import S3Store

    credentials = {}
    if fields.s3_access_key_id and fields.s3_secret_access_key:
        credentials = {
            "access_key_id": fields.s3_access_key_id.get_secret_value(),
            "secret_access_key": fields.s3_secret_access_key.get_secret_value(),
        }
    encryption: dict[str, str] = {"server_side_encryption": fields.s3_sse}
    if fields.s3_sse_kms_key_id:
        encryption["sse_kms_key_id"] = fields.s3_sse_kms_key_id
    endpoint = {"endpoint": fields.s3_endpoint_url} if fields.s3_endpoint_url else {}
    store = S3Store(
        bucket,
        region=fields.s3_region,
        client_options={"allow_http": (fields.s3_endpoint_url or "").startswith("http://")},
        # As many attempts as pyarrow's S3 filesystem makes (3), so an outage stops
        # flushes as soon on this path as on the other.
        retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=30)},
        **credentials,  # type: ignore[arg-type]
        **encryption,  # type: ignore[arg-type]
        **endpoint,  # type: ignore[arg-type]
    )

    def put(path: str, data: bytes) -> None:
        key = path.split("/", 1)[1]  # Lake.path() is "<bucket>/<key>"
        try:
            obstore_put(store, key, data)
        except Exception as e:  # obstore's errors are not OSErrors; writers expect one
            raise OSError(f"S3 PUT s3://{bucket}/{key} ({fields.s3_sse}) failed: {e}") from e

    return put

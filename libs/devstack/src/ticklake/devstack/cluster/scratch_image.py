"""A ``FROM scratch`` image holding one static binary, as a docker-archive tar.

The cluster's own images (the pod sandbox and CoreDNS) are a single static Go
binary each; writing the archive directly needs no image builder and gives the
same bytes for the same binary (file times are zeroed), so the image's ID only
changes when the binary does. ``ctr images import`` reads this format.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _layer(binary: Path, path_in_image: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for parent in reversed(Path(path_in_image).parents[:-1]):
            info = tarfile.TarInfo(str(parent).lstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        _add(tar, path_in_image.lstrip("/"), binary.read_bytes(), mode=0o755)
    return buf.getvalue()


def write_scratch_archive(
    archive: Path, ref: str, binary: Path, *, path_in_image: str, user: str = "65532:65532"
) -> str:
    """Write ``archive``: image ``ref`` running ``binary`` as ``user``; return its image ID."""
    layer = _layer(binary, path_in_image)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [path_in_image], "User": user},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            "history": [{"created_by": f"ticklake.devstack.cluster: {binary.name}"}],
        },
        sort_keys=True,
    ).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [
            {
                "Config": f"{config_digest}.json",
                "RepoTags": [ref],
                "Layers": [f"{layer_digest}/layer.tar"],
            }
        ]
    ).encode()
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, f"{config_digest}.json", config)
        _add(tar, f"{layer_digest}/layer.tar", layer)
        _add(tar, "manifest.json", manifest)
    tmp.replace(archive)
    return f"sha256:{config_digest}"


def archive_config_digest(archive: Path) -> str:
    """The image ID (config digest) of a docker-archive tar, e.g. one ``podman save`` wrote."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError(f"{archive}: no manifest.json (not a docker-archive tar)")
        manifest = json.load(member)
    config = manifest[0]["Config"]
    return "sha256:" + Path(config).name.removesuffix(".json").removeprefix("sha256:")


def archive_identity(archive: Path) -> str:
    """A digest of a docker-archive tar's manifest: it names every image's config
    (content-addressed) and tags, so equal identities mean the same images."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError(f"{archive}: no manifest.json (not a docker-archive tar)")
        return "sha256:" + hashlib.sha256(member.read()).hexdigest()

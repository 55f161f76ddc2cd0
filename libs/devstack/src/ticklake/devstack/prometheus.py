"""A real Prometheus (Debian's ``prometheus`` package) scraping the local services."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from importlib import resources
from pathlib import Path
from string import Template

from ticklake.devstack import ports, process


def prometheus_binary() -> str | None:
    """Path of ``prometheus`` when installed; the stack runs without it otherwise."""
    return shutil.which("prometheus")


def render_scrape_config(
    *, prometheus_port: int, producer_port: int, ingest_port: int, query_port: int
) -> str:
    template = resources.files("ticklake.devstack").joinpath("prometheus.yml.template")
    return Template(template.read_text()).substitute(
        prometheus_port=prometheus_port,
        producer_port=producer_port,
        ingest_port=ingest_port,
        query_port=query_port,
    )


class PrometheusServer:
    def __init__(self, data_dir: Path, config_text: str, port: int, *, owned: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.config_text = config_text
        self.port = port
        self.owned = owned
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30.0) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus")
        if self._proc is not None and self._proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(self.config_text)
        argv = [
            binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            "--storage.tsdb.retention.time=1d",
        ]
        self._proc = process.spawn(argv, self.data_dir / "prometheus.log", owned=self.owned)
        ports.wait_until(self.ready, timeout, f"Prometheus on port {self.port}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        process.stop(self._proc, 15)

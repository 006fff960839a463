"""Start and stop Azurite, the real Azure Storage emulator, for tests and the local demo.

Azurite is pinned in ``package.json`` (3.35.0, the newest that installs on Node 20) and installed
with ``npm ci`` into ``node_modules/``. Quirks handled here:

- ``--skipApiVersionCheck``: without it Azurite refuses the API version of the current Python SDK.
- ``UseDevelopmentStorage=true`` always means ports 10000/10001, so we build the explicit
  ``devstoreaccount1`` connection string for whatever free ports we picked.
- Start-up takes 1-2 s; we wait until the blob port accepts a connection.
- HTTPS (``cert``/``key``) with ``--oauth basic`` is what Metaflow's Azure datastore needs, since
  Metaflow authenticates to Azure only through ``DefaultAzureCredential``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["ACCOUNT_KEY", "ACCOUNT_NAME", "Azurite", "AzuriteError", "azurite_binary", "free_port"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Azurite's well-known development account: public, documented by Microsoft, not a secret.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_binary() -> str:
    """Path of the pinned Azurite (``node_modules/.bin/azurite``), or ``AZURITE_BIN`` if set."""
    explicit = os.environ.get("AZURITE_BIN")
    if explicit:
        return explicit
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise AzuriteError(f"Azurite is not installed: run `npm ci` in {REPO_ROOT} (or `make setup`), or set AZURITE_BIN")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AzuriteError(
                f"Azurite exited with code {proc.returncode}; its output:\n{log.read_text(errors='replace')[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AzuriteError(
        f"Azurite did not open port {port} within {timeout:.0f} s; its output:\n{log.read_text(errors='replace')[-2000:]}"
    )


@dataclass
class Azurite:
    """One Azurite process serving blob, queue and table on loopback, on free ports.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``location`` defaults to a
    fresh temporary folder that is removed on stop.
    """

    location: Path | None = None
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    cert: Path | None = None
    key: Path | None = None
    oauth_basic: bool = False
    startup_timeout: float = 30.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """Explicit connection string (``UseDevelopmentStorage=true`` would pin ports 10000-10002)."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def start(self) -> Azurite:
        if self._proc is not None:
            return self
        binary = azurite_binary()
        if self.location is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
            self.location = Path(self._tmp.name)
        self.location.mkdir(parents=True, exist_ok=True)
        self.blob_port = self.blob_port or free_port()
        self.queue_port = self.queue_port or free_port()
        self.table_port = self.table_port or free_port()
        args = [
            binary,
            "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            "--location", str(self.location),
            "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip
        if self.cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        if self.oauth_basic:
            args += ["--oauth", "basic"]
        log = self.location / "azurite.log"
        with open(log, "wb") as out:
            # Own process group, so stop() also ends node's children.
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for_port(self.blob_port, self._proc, self.startup_timeout, log)
            _wait_for_port(self.queue_port, self._proc, self.startup_timeout, log)
            _wait_for_port(self.table_port, self._proc, self.startup_timeout, log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.location = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

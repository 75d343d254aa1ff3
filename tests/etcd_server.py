"""Start a real etcd on free loopback ports with a temporary data dir, for tests.

``etcd_binary()`` finds the binary (Debian's ``etcd-server`` installs ``/usr/bin/etcd``);
tests skip when it is missing. :class:`EtcdServer` is a context manager; use ``.url``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def etcd_binary() -> str | None:
    """Path of the etcd binary, or None."""
    return shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """A single-member etcd bound to 127.0.0.1 only; stopped and its data dir removed on exit.

    ``quota_bytes``: ``--quota-backend-bytes`` (None: etcd's default). ``auto_tls``: serve the
    client port over TLS with a self-signed certificate (``--auto-tls``).
    """

    def __init__(self, quota_bytes: int | None = None, auto_tls: bool = False) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd binary not found (apt-get install etcd-server)")
        self.binary = binary
        self.quota_bytes = quota_bytes
        self.auto_tls = auto_tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.url = ""

    def __enter__(self) -> EtcdServer:
        self.tmp = tempfile.TemporaryDirectory(prefix="tracesim-etcd-")
        data = Path(self.tmp.name) / "data"
        scheme = "https" if self.auto_tls else "http"
        for _attempt in range(5):  # a port taken between probing and binding: try others
            client, peer = _free_port(), _free_port()
            self.url = f"{scheme}://127.0.0.1:{client}"
            peer_url = f"http://127.0.0.1:{peer}"
            args = [
                self.binary,
                "--name=test",
                f"--data-dir={data}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
                "--log-level=error",
            ]
            if self.quota_bytes is not None:
                args.append(f"--quota-backend-bytes={self.quota_bytes}")
            if self.auto_tls:
                args.append("--auto-tls")
            log = open(Path(self.tmp.name) / "etcd.log", "wb")
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(15.0):
                return self
            self._stop()
            shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError(f"etcd did not start; log: {self.log()[-2000:]}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        ctx = None
        if self.auto_tls:
            import ssl

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                req = urllib.request.Request(
                    f"{self.url}/v3/maintenance/status", data=b"{}", method="POST"
                )
                with urllib.request.urlopen(req, timeout=1, context=ctx) as resp:
                    if resp.status == 200:
                        return True
            time.sleep(0.05)
        return False

    def log(self) -> str:
        """etcd's log so far."""
        if self.tmp is None:
            return ""
        path = Path(self.tmp.name) / "etcd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc: object) -> None:
        self._stop()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None

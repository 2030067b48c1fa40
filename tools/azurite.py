"""Start and stop Azurite, the official Azure Storage emulator, from node_modules."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_free(port: int, what: str, fix: str) -> None:
    """Stop with a message that says what to do when `port` is taken on 127.0.0.1."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is ok
        try:
            s.bind(("127.0.0.1", port))
        except OSError as error:
            reason = error.strerror or str(error)
            raise SystemExit(f"Port {port}, for {what}, is in use ({reason}). {fix}") from None


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_for_ports(process: subprocess.Popen[bytes], ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Azurite did not open ports {pending} in {timeout:.0f} s")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.1)


def start_azurite(
    data_dir: Path | None,
    blob_port: int = 10000,
    queue_port: int = 10001,
    table_port: int = 10002,
    log_file: Path | None = None,
) -> Azurite:
    """Start Azurite; data under `data_dir`, or in memory when it is None."""
    if not AZURITE_BIN.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does this for you).")
    for port in (blob_port, queue_port, table_port):
        require_free(
            port,
            "Azurite",
            "Another Azurite (or an earlier `make run`) is probably running: stop it "
            "(`lsof -i :10000-10002` or `docker ps` shows which) and start again.",
        )
    args = [
        str(AZURITE_BIN),
        "--silent",
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
        "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
    ]  # fmt: skip
    if data_dir is None:
        args.append("--inMemoryPersistence")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(data_dir)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    azurite = Azurite(process, blob_port, queue_port, table_port)
    try:
        _wait_for_ports(process, [blob_port, queue_port, table_port], timeout=60)
    except Exception:
        azurite.stop()
        raise
    return azurite

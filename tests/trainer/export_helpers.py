"""Running an unpacked export as a user's machine or its Docker image would: unzip's modes, an
unprivileged uid whose home does not exist, the Dockerfile's WORKDIR, USER, ENV, EXPOSE and CMD.

Run as a script (standard library only) it is the client inside the container's network
namespace: it brings up lo, lets unprivileged users bind low ports as Docker does (from 20.10 on),
starts the command, waits until it answers GET /, POSTs an image to /image and prints the outcome
as JSON.
"""

from __future__ import annotations

import fcntl
import io
import json
import shlex
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNIX = 3  # ZipInfo.create_system of an entry made on Unix: the only kind whose mode unzip applies
STARTUP_SECONDS = 120


def unzip_with_modes(zip_bytes: bytes, folder: Path) -> None:
    """Extract as unzip does: each entry made on Unix gets its stored mode (extractall drops it)."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for info in archive.infolist():
            target = (folder / info.filename).resolve()
            assert target.is_relative_to(folder.resolve()), info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
            if info.create_system == UNIX and info.external_attr >> 16:
                target.chmod(stat.S_IMODE(info.external_attr >> 16))


def as_user(uid: int, gid: int) -> list[str]:
    """The command prefix that runs a program as uid:gid with no supplementary groups, as Docker's
    USER does (the caller must be root); it dies with whoever started it."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--pdeathsig=KILL"]


def python_command(argv: list[str]) -> list[str]:
    """`argv` with its `python` (the image's, on its PATH) as this interpreter, by full path.
    setpriv execs it still holding root's capabilities, so a base interpreter in a folder the uid
    may not search (here the virtual environment's, under /root) starts; a PATH search or a
    wrapper script running as the uid could not reach it."""
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


@dataclass(frozen=True)
class Dockerfile:
    """What a Dockerfile tells the container it starts (one stage, exec-form CMD)."""

    workdir: str
    copies: list[tuple[str, str]]  # COPY (source, destination)
    uid: int
    gid: int
    home: str  # the USER's home, as useradd made it (Docker sets HOME to it)
    home_created: bool
    ports: list[int]  # EXPOSE
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)


def parse_dockerfile(text: str) -> Dockerfile:
    instructions: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        logical = ""
    values: dict[str, Any] = {"copies": [], "ports": [], "env": {}, "cmd": []}
    users: dict[str, tuple[int, str, bool]] = {}  # useradd: name -> (uid, home, created)
    for keyword, arguments in instructions:
        if keyword == "WORKDIR":
            values["workdir"] = arguments
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            values["copies"] += [(source, destination) for source in sources]
        elif keyword == "USER":
            user, _, group = arguments.partition(":")
            values["user"] = (user, group)
        elif keyword == "EXPOSE":
            values["ports"] += [int(port.split("/")[0]) for port in arguments.split()]
        elif keyword == "CMD":
            values["cmd"] = json.loads(arguments)  # exec form: no shell between Docker and it
        elif keyword == "ENV":
            words = shlex.split(arguments)
            if "=" in words[0]:
                values["env"].update(word.split("=", 1) for word in words)
            else:  # the legacy form: ENV KEY the value
                values["env"][words[0]] = arguments.partition(" ")[2].strip()
        elif keyword == "RUN":
            for command in arguments.split("&&"):
                words = shlex.split(command)
                if words and words[0] == "useradd":
                    uid = int(words[words.index("--uid") + 1])
                    home = f"/home/{words[-1]}"
                    for flag in ("--home-dir", "-d"):
                        if flag in words:
                            home = words[words.index(flag) + 1]
                    created = "--create-home" in words or "-m" in words
                    users[words[-1]] = (uid, home, created)
    user, group = values.pop("user")
    by_uid = {uid: (home, created) for uid, home, created in users.values()}
    uid = int(user) if user.isdigit() else users[user][0]
    home, home_created = by_uid.get(uid, ("/", False))  # Docker: "/" for a user without an entry
    return Dockerfile(
        uid=uid, gid=int(group or uid), home=home, home_created=home_created, **values
    )


def can_unshare_network() -> bool:
    """Whether this process may make a network namespace of its own (root, CAP_SYS_ADMIN)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return (
        subprocess.run([unshare, "--net", "true"], capture_output=True, check=False).returncode == 0
    )


def serve_and_post(
    argv: list[str], cwd: Path, env: dict[str, str], port: int, image: Path
) -> dict[str, Any]:
    """Start `argv` (a server on `port`) in a network namespace of its own as Docker would, POST
    `image` to /image; {"status", "body", "stdout", "stderr", "returncode"}. Without the right to
    make a namespace (a container without CAP_SYS_ADMIN) it runs in this one: Docker's, in CI."""
    own_network = can_unshare_network()
    prefix = [shutil.which("unshare") or "unshare", "--net", "--"] if own_network else []
    spec = {
        "argv": argv,
        "cwd": str(cwd),
        "env": env,
        "port": port,
        "image": str(image),
        "own_network": own_network,
    }
    done = subprocess.run(
        [*prefix, sys.executable, __file__, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS + 120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- inside the namespace ----------------------------------------------------------------------


def _bring_up_loopback() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _request(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data, headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def _serve_and_post(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["own_network"]:
        _bring_up_loopback()
        # What Docker sets in every container's namespace: any user may bind any port.
        Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text("0")
    url = f"http://127.0.0.1:{spec['port']}"
    result: dict[str, Any] = {"status": None, "body": None}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        app = subprocess.Popen(
            spec["argv"], cwd=spec["cwd"], env=spec["env"], stdout=out, stderr=err
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while app.poll() is None and time.monotonic() < deadline:
                try:
                    if _request(url + "/") == (200, b"Healthy"):
                        status, body = _request(url + "/image", Path(spec["image"]).read_bytes())
                        result.update(status=status, body=body.decode("utf-8", "replace"))
                        break
                except OSError:
                    time.sleep(0.2)
        finally:
            if app.poll() is None:
                app.terminate()
            try:
                app.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
        result["returncode"] = app.returncode
        for name, file in (("stdout", out), ("stderr", err)):
            file.seek(0)
            result[name] = file.read().decode("utf-8", "replace")
    return result


@contextmanager
def serving_app(folder: Path) -> Iterator[str]:
    """The unpacked Docker export's app.py on a free local port, once it answers GET / with
    "Healthy"; its URL. Stopped on leaving."""
    from tools.azurite import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--host", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    assert response.read() == b"Healthy"
                    break
            except OSError:
                assert time.monotonic() < deadline, "app.py did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    print(json.dumps(_serve_and_post(json.loads(sys.argv[1]))))

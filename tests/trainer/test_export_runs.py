"""The exports run where they are meant to run: each zip unpacked with its stored modes (as unzip
does), its predict.py run as an unprivileged uid whose home does not exist, and the Docker
export's app.py started as its Dockerfile says (WORKDIR, USER, ENV, EXPOSE, CMD) and sent a photo.

The tests run as root here and in CI, so the scripts run as uid 10001 (setpriv); elsewhere they
run as the current user, and only starting the Docker export as its USER is skipped."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.export_helpers import (
    as_user,
    parse_dockerfile,
    python_command,
    serve_and_post,
    unzip_with_modes,
)
from tests.trainer.test_exports import CLASSES, Flowers, _check_prediction, flowers
from trainer_job.exports import FLAVORS
from trainer_job.exports.platforms import resolve

__all__ = ["flowers"]  # test_exports.py's fixture, used here (for ruff: not an unused import)

IS_ROOT = os.geteuid() == 0
UNPRIVILEGED = 10001  # the uid the Docker export runs as; predict.py runs as it too
SCRIPTS = {"predict.py", "app.py"}  # what a user runs directly: 0755, the rest 0644
DOCKER_PHOTO = 30  # flowers.test_files[30], a tulip
PREDICT_PHOTO = -1
IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"  # the python images' PATH, less its sbin folders


def _exports() -> dict[str, tuple[str, str | None]]:
    """Every export once: its concrete flavor -> (platform, flavor) as the API names it."""
    exports: dict[str, tuple[str, str | None]] = {}
    for platform, flavors in FLAVORS.items():
        for flavor in flavors:
            exports.setdefault(resolve(platform, flavor), (platform, flavor))
    return exports


EXPORTS = _exports()
DOCKER = [name for name, (platform, _) in EXPORTS.items() if platform == "DockerFile"]


@pytest.fixture
def place() -> Iterator[Path]:
    """A root-owned 0755 folder (pytest's tmp_path sits in a 0700 one) with a home folder that
    nobody but its owner may write: HOME=place/home/<name> does not exist, nor can be made."""
    folder = Path(tempfile.mkdtemp(prefix="export-run-"))
    folder.chmod(0o755)
    (folder / "home").mkdir(mode=0o555)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _export(flowers: Flowers, name: str) -> bytes:
    return flowers.export(*EXPORTS[name])


def _photo(flowers: Flowers, index: int, place: Path) -> Path:
    """The photo copied where every user can read it (a user's own photo, not the fixtures')."""
    photo = place / "photo.jpg"
    shutil.copyfile(flowers.test_files[index], photo)
    photo.chmod(0o644)
    return photo


def _read(zip_bytes: bytes, name: str) -> str:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return archive.read(name).decode("utf-8")


@pytest.mark.parametrize("name", list(EXPORTS))
def test_every_entry_is_readable_and_the_scripts_executable(flowers: Flowers, name: str) -> None:
    with zipfile.ZipFile(io.BytesIO(_export(flowers, name))) as archive:
        entries = archive.infolist()
        scripts = {info.filename for info in entries} & SCRIPTS
        assert "predict.py" in scripts
        for info in entries:
            mode = info.external_attr >> 16
            assert info.create_system == 3, f"{info.filename}: not marked Unix, unzip drops modes"
            if info.is_dir():
                assert mode == stat.S_IFDIR | 0o755, (info.filename, oct(mode))
                continue
            expected = 0o755 if info.filename in scripts else 0o644
            assert mode == stat.S_IFREG | expected, (info.filename, oct(mode))
        for script in scripts:
            assert archive.read(script).startswith(b"#!/usr/bin/env python3\n"), script


def _unprivileged() -> list[str]:
    """The prefix that runs a command as uid 10001 where we may (root), else as ourselves."""
    return as_user(UNPRIVILEGED, UNPRIVILEGED) if IS_ROOT else []


@pytest.mark.parametrize("name", list(EXPORTS))
def test_predict_script_runs_as_an_unprivileged_user(
    flowers: Flowers, name: str, place: Path
) -> None:
    if name == "CoreML" and sys.platform != "darwin":
        pytest.skip("Core ML models run only on macOS")
    folder = place / "export"
    folder.mkdir()
    unzip_with_modes(_export(flowers, name), folder)
    photo = _photo(flowers, PREDICT_PHOTO, place)
    env = {"PATH": IMAGE_PATH, "HOME": str(place / "home" / "user"), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [*_unprivileged(), *python_command(["python", "predict.py", str(photo)])],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = json.loads(done.stdout)["predictions"]
    assert {p["tagName"] for p in predictions} == set(CLASSES)
    scores = [p["probability"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-2)
    expected = CLASSES[int(flowers.reference[PREDICT_PHOTO].argmax())]
    assert predictions[0]["tagName"] == expected


@pytest.mark.parametrize("name", DOCKER)
def test_dockerfile_runs_the_zips_app_on_the_port_it_exposes(flowers: Flowers, name: str) -> None:
    zip_bytes = _export(flowers, name)
    docker = parse_dockerfile(_read(zip_bytes, "Dockerfile"))
    assert docker.workdir.startswith("/")
    assert docker.copies == [(".", docker.workdir)], "the zip is copied into the WORKDIR"
    assert docker.uid != 0 and docker.gid != 0
    assert docker.cmd[:2] == ["python", "app.py"]
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert "app.py" in archive.namelist()
    assert "--port" in docker.cmd, "app.py's own default is not what EXPOSE says"
    assert docker.ports == [int(docker.cmd[docker.cmd.index("--port") + 1])]


@pytest.mark.skipif(not IS_ROOT, reason="not root: cannot run the app as the Dockerfile's USER")
@pytest.mark.parametrize("name", DOCKER)
def test_docker_app_serves_a_photo_as_its_user(flowers: Flowers, name: str, place: Path) -> None:
    zip_bytes = _export(flowers, name)
    docker = parse_dockerfile(_read(zip_bytes, "Dockerfile"))
    # The image's filesystem under `place`: root-owned, COPY keeping the zip's modes.
    for _, destination in docker.copies:
        unzip_with_modes(zip_bytes, place / destination.lstrip("/"))
    workdir = place / docker.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    home = place / docker.home.lstrip("/")
    if docker.home_created:
        home.mkdir(parents=True)
        os.chown(home, docker.uid, docker.gid)
    env = {"PATH": IMAGE_PATH, "HOME": str(home), "LANG": "C.UTF-8", **docker.env}
    result = serve_and_post(
        [*as_user(docker.uid, docker.gid), *python_command(docker.cmd)],
        cwd=workdir,
        env=env,
        port=docker.ports[0],
        image=_photo(flowers, DOCKER_PHOTO, place),
    )
    assert result["status"] == 200, json.dumps(result, indent=1)[-3000:]
    _check_prediction(flowers, json.loads(result["body"]), DOCKER_PHOTO)
    # Nothing on stderr: no traceback, no runtime complaining that it cannot write its home.
    assert result["stderr"] == "", result["stderr"]

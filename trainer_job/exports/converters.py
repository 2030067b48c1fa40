"""The converters that only some exports need, installed on first use.

TensorFlow with onnx2tf, OpenVINO and coremltools take about 2.5 GB, so `make run` does not
install them: the first export of a format that needs one installs its packages (pinned in
trainer_job/requirements-exporters.txt) into the running environment with pip, once. The
trainer's container image has them all already (trainer_job/Dockerfile), and `make exporters`
installs them up front.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

from trainer_job.exports.inputs import ExportError

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements-exporters.txt"
CORE = REQUIREMENTS.with_name("requirements.txt")  # the trainer's pins stay as they are
INSTALL_TIMEOUT_SECONDS = 1800
log = logging.getLogger(__name__)

# flavor -> (the modules it imports, the distributions that provide them and what they need);
# the other flavors need only the trainer's own packages.
_TENSORFLOW = (
    ("tensorflow", "onnx2tf", "ai_edge_litert"),
    (
        "tensorflow-cpu",
        "tf-keras",
        "onnx2tf",
        "onnx-graphsurgeon",
        "sng4onnx",
        "psutil",
        "ai-edge-litert",
    ),
)
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "OpenVino": (("openvino",), ("openvino",)),
    "TensorFlowNormal": _TENSORFLOW,
    "TensorFlowLite": _TENSORFLOW,
    "CoreML": (("coremltools",), ("coremltools",)),
}


def missing(flavor: str) -> list[str]:
    """The modules `flavor` needs that this environment lacks."""
    modules, _ = NEEDS.get(flavor, ((), ()))
    return [m for m in modules if importlib.util.find_spec(m) is None]


def requirement_lines(path: Path) -> dict[str, str]:
    """A requirements file's requirements by normalised distribution name (options such as
    `-r` and comments left out)."""
    lines = {}
    for line in path.read_text("utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement and not requirement.startswith("-"):
            name = re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]
            lines[name.lower().replace("_", "-")] = requirement
    return lines


def pinned(distributions: tuple[str, ...]) -> list[str]:
    """The lines of requirements-exporters.txt that pin `distributions`."""
    lines = requirement_lines(REQUIREMENTS)
    unknown = [d for d in distributions if d not in lines]
    if unknown:
        raise ExportError(f"{REQUIREMENTS.name} does not pin {', '.join(unknown)}")
    return [lines[d] for d in distributions]


def ensure(flavor: str) -> None:
    """Install what `flavor` needs if it is not installed yet; ExportError saying why not."""
    if not missing(flavor):
        return
    # One install at a time across processes (two local workers, a benchmark beside `make run`).
    with open(Path(sys.prefix) / ".exporters.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not missing(flavor):  # another process installed them meanwhile
            return
        requirements = pinned(NEEDS[flavor][1])
        log.warning(
            "export %s: installing %s (first use; this takes a few minutes)",
            flavor,
            " ".join(requirements),
        )
        command = [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(CORE)]
        try:
            done = subprocess.run(
                [*command, *requirements],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ExportError(f"installing the {flavor} converters failed: {error}") from error
        importlib.invalidate_caches()
    if done.returncode != 0 or missing(flavor):
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ExportError(
            f"the {flavor} export needs {', '.join(missing(flavor))}, which could not be "
            f"installed ({reason}); install them with `make exporters`"
        )

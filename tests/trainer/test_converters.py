"""The export converters that are installed on first use (trainer_job/exports/converters.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_job.exports import converters
from trainer_job.exports.inputs import ExportError
from trainer_job.exports.platforms import DEFAULT_FLAVORS, FLAVORS

ROOT = Path(__file__).resolve().parents[2]


def distribution_names(path: Path) -> set[str]:
    return set(converters.requirement_lines(path))


def test_every_converter_is_pinned_once_and_used_by_a_flavor() -> None:
    exporters = distribution_names(converters.REQUIREMENTS)
    needed = {d for _, distributions in converters.NEEDS.values() for d in distributions}
    assert needed == exporters
    for _, distributions in converters.NEEDS.values():
        assert all("==" in line for line in converters.pinned(distributions))
    # What the function app and `make run` install holds none of them.
    local = distribution_names(ROOT / "requirements.txt") | distribution_names(
        ROOT / "trainer_job" / "requirements.txt"
    )
    assert not exporters & local


def test_every_flavor_is_known() -> None:
    flavors = {f for named in FLAVORS.values() for f in named if f} | set(DEFAULT_FLAVORS.values())
    assert set(converters.NEEDS) <= flavors
    assert {"OpenVino", "TensorFlowNormal", "TensorFlowLite", "CoreML"} <= set(converters.NEEDS)


def test_nothing_to_install_when_present() -> None:
    # `make test` installs every converter, so no flavor misses anything here.
    for flavor in converters.NEEDS:
        assert converters.missing(flavor) == []
        converters.ensure(flavor)


def test_a_failed_install_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module that does not exist, from a distribution no index has: the real pip runs and fails.
    monkeypatch.setitem(
        converters.NEEDS, "Made", (("ocv_no_such_module",), ("ocv-no-such-distribution",))
    )
    monkeypatch.setattr(
        converters, "pinned", lambda distributions: ["ocv-no-such-distribution==1.0"]
    )
    with pytest.raises(ExportError, match="make exporters") as failed:
        converters.ensure("Made")
    assert "ocv_no_such_module" in str(failed.value)


def test_an_unpinned_converter_is_refused() -> None:
    with pytest.raises(ExportError, match="does not pin"):
        converters.pinned(("ocv-no-such-distribution",))

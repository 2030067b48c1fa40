"""hadolint on every Dockerfile of the repository, at every level; images run as non-root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.infra_checks import ROOT, dockerfiles, hadolint_problems


def test_the_trainer_dockerfile_is_found() -> None:
    assert ROOT / "trainer_job" / "Dockerfile" in dockerfiles()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_is_clean(dockerfile: Path) -> None:
    assert hadolint_problems(dockerfile) == []


def test_hadolint_reports_a_careless_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install torch\n"
        "COPY . /app\n"
    )

    problems = " ".join(hadolint_problems(dockerfile))

    for code in ("DL3007", "DL3008", "DL3013"):  # latest tag, unpinned apt and pip packages
        assert code in problems
    assert "runs as root" in problems

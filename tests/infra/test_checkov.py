"""checkov on infra/ (Bicep) and infra/terraform/ (Terraform): every file parses, and every check
passes or is skipped in place with a written reason (`checkov:skip=CKV_...: reason`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infra.infra_checks import INFRA, TERRAFORM, run_checkov


@pytest.mark.parametrize(("directory", "framework"), [(INFRA, "bicep"), (TERRAFORM, "terraform")])
def test_checkov_passes(directory: Path, framework: str) -> None:
    report = run_checkov(directory, framework)
    assert report.resource_count > 20, "checkov found (almost) nothing to scan"
    assert report.passed, "no check ran"
    assert report.problems == []


def _without_line(text: str, needle: str) -> str:
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if needle not in line]
    assert len(kept) == len(lines) - 1, f"{needle!r} is not on exactly one line"
    return "".join(kept)


def test_checkov_reports_a_broken_bicep_copy(tmp_path: Path) -> None:
    """A copy of the storage module with one skip removed and one reason removed, and a file that
    does not parse: the check reports all three."""
    text = (INFRA / "modules" / "storage.bicep").read_text()
    text = _without_line(text, "checkov:skip=CKV_AZURE_206")
    reasonless = "// checkov:skip=CKV_AZURE_35"
    text = "\n".join(
        reasonless if line.strip().startswith(reasonless) else line for line in text.splitlines()
    )
    (tmp_path / "storage.bicep").write_text(text)
    (tmp_path / "broken.bicep").write_text(
        "resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
    )

    problems = run_checkov(tmp_path, "bicep").problems

    assert any(p.startswith("failed CKV_AZURE_206") for p in problems), problems
    assert any(p.startswith("skipped without a reason: CKV_AZURE_35") for p in problems), problems
    assert any(p.startswith("parsing error") and "broken.bicep" in p for p in problems), problems


def test_checkov_reports_a_broken_terraform_copy(tmp_path: Path) -> None:
    shutil.copy(TERRAFORM / "registry.tf", tmp_path / "registry.tf")
    text = _without_line((TERRAFORM / "keyvault.tf").read_text(), "checkov:skip=CKV_AZURE_109")
    (tmp_path / "keyvault.tf").write_text(text)
    (tmp_path / "broken.tf").write_text('resource "azurerm_storage_account" "x" {\n  name = \n')

    problems = run_checkov(tmp_path, "terraform").problems

    assert any(p.startswith("failed CKV_AZURE_109") for p in problems), problems
    assert any(p.startswith("parsing error") and "broken.tf" in p for p in problems), problems
    assert not any("azurerm_container_registry" in p for p in problems), problems

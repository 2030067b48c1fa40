"""The offline checks of infra/: checkov's JSON report read strictly, hadolint's findings, and the
names (containers, tables, queues, app settings) that Bicep, Terraform and the code must share.

Each check returns a list of problems (empty: all good), so the tests can also show that a check
reports a deliberately broken input.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
# checkov pins packaging<24 (pytest needs >=24), so the Makefile installs it into its own venv.
CHECKOV = ROOT / ".venv" / "tools" / "bin" / "checkov"
HADOLINT = Path(sys.executable).parent / "hadolint"
NOT_DOCKERFILE_DIRS = {".git", ".venv", "node_modules", ".data", ".artifacts", "__pycache__"}


# --- checkov -----------------------------------------------------------------------------------


@dataclass
class CheckovReport:
    """checkov's verdict on one directory and framework."""

    resource_count: int = 0
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_checkov(directory: Path, framework: str) -> CheckovReport:
    """Run checkov and read its JSON. checkov exits 0 on files it cannot parse, so the verdict
    comes from the report: parsing errors, failed checks, and skips without a written reason
    are problems."""
    if not CHECKOV.exists():
        raise FileNotFoundError(f"{CHECKOV} is missing: `make test` installs it (.venv/tools)")
    command = [str(CHECKOV), "-d", str(directory), "--framework", framework]
    # No --quiet: with it checkov leaves parsing_errors out of the JSON.
    command += ["--skip-download", "--output", "json"]
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"checkov crashed ({done.returncode}): {done.stderr[-2000:]}")
    return read_checkov_json(done.stdout)


def read_checkov_json(text: str) -> CheckovReport:
    data: Any = json.loads(text)
    runs = data if isinstance(data, list) else [data]
    report = CheckovReport()
    for run in runs:
        results = run.get("results")
        if results is None:  # checkov's short form when it found nothing to scan
            continue
        report.resource_count += int(run.get("summary", {}).get("resource_count", 0))
        for path in results.get("parsing_errors", []):
            report.problems.append(f"parsing error: {path}")
        for check in results.get("failed_checks", []):
            report.problems.append(f"failed {_describe(check)}")
        for check in results.get("passed_checks", []):
            report.passed.append(_describe(check))
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
            if not reason or reason == "No comment provided":
                report.problems.append(f"skipped without a reason: {_describe(check)}")
            report.skipped.append(_describe(check))
    return report


def _describe(check: dict[str, Any]) -> str:
    lines = check.get("file_line_range") or [0]
    where = f"{check.get('file_path', '?')}:{lines[0]}"
    return (
        f"{check['check_id']} {check.get('resource', '?')} ({where}): {check.get('check_name', '')}"
    )


# --- hadolint ----------------------------------------------------------------------------------


def dockerfiles(root: Path = ROOT) -> list[Path]:
    """Every Dockerfile of the repository (Dockerfile, Dockerfile.*, *.Dockerfile)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NOT_DOCKERFILE_DIRS]
        for name in filenames:
            if name.endswith(".dockerignore"):
                continue
            if (
                name == "Dockerfile"
                or name.startswith("Dockerfile.")
                or name.endswith(".Dockerfile")
            ):
                found.append(Path(dirpath) / name)
    return sorted(found)


def hadolint_problems(dockerfile: Path) -> list[str]:
    """hadolint's findings at every level (error to style), plus: the image must not run as root."""
    done = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"hadolint failed ({done.returncode}): {done.stderr[-2000:]}")
    problems = [
        f"{dockerfile.name}:{f['line']} {f['code']} {f['level']}: {f['message']}"
        for f in json.loads(done.stdout)
    ]
    users = re.findall(r"^\s*USER\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE | re.I)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{dockerfile.name}: the image runs as root (no non-root USER at the end)")
    return problems


# --- names shared by infra and code ------------------------------------------------------------


def bicep_string_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"^var {variable} = \[(.*?)\]", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"var {variable} not found")
    return re.findall(r"'([^']*)'", match.group(1))


def bicep_string(text: str, variable: str) -> str:
    match = re.search(rf"^var {variable} = '([^']*)'", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"var {variable} not found")
    return match.group(1)


def terraform_string_list(text: str, local: str) -> list[str]:
    match = re.search(rf"^\s*{local}\s*=\s*\[(.*?)\]", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"local {local} not found")
    return re.findall(r'"([^"]*)"', match.group(1))


def terraform_string(text: str, local: str) -> str:
    match = re.search(rf'^\s*{local}\s*=\s*"([^"]*)"', text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"local {local} not found")
    return match.group(1)


def bicep_settings(text: str) -> dict[str, str]:
    """`{ name: 'X', value: ... }` entries (app settings, container env) of a Bicep file."""
    pattern = r"^\s*\{\s*name:\s*'([A-Za-z0-9_]+)',\s*value:\s*(.*?)\s*\}\s*$"
    return dict(re.findall(pattern, text, flags=re.MULTILINE))


def terraform_app_settings(text: str) -> dict[str, str]:
    """The `app_settings = { ... }` map of a Terraform file."""
    match = re.search(r"^(\s*)app_settings\s*=\s*\{\n(.*?)^\1\}", text, flags=re.M | re.S)
    if match is None:
        raise ValueError("app_settings not found")
    pattern = r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$"
    return dict(re.findall(pattern, match.group(2), flags=re.MULTILINE))


def terraform_env(text: str) -> dict[str, str]:
    """`{ name = "X", value = ... }` entries (container env) of a Terraform file."""
    pattern = r'^\s*\{\s*name\s*=\s*"([A-Za-z0-9_]+)",\s*value\s*=\s*(.*?)\s*\},?\s*$'
    return dict(re.findall(pattern, text, flags=re.MULTILINE))


@dataclass(frozen=True)
class CodeNames:
    """What the code expects the infrastructure to provide."""

    containers: tuple[str, ...]
    tables: tuple[str, ...]
    queues: tuple[str, ...]
    training_queue: str
    ingest_container: str
    ingest_function: str
    ingest_connection: str
    setting_names: frozenset[str]  # CV_... environment variables Settings reads


@dataclass(frozen=True)
class InfraTexts:
    bicep_main: str
    bicep_function_app: str
    bicep_container_apps: str
    terraform_main: str
    terraform_function_app: str
    terraform_container_apps: str

    @classmethod
    def read(cls, infra: Path = INFRA) -> InfraTexts:
        return cls(
            bicep_main=(infra / "main.bicep").read_text(),
            bicep_function_app=(infra / "modules" / "functionapp.bicep").read_text(),
            bicep_container_apps=(infra / "modules" / "containerapps.bicep").read_text(),
            terraform_main=(infra / "terraform" / "main.tf").read_text(),
            terraform_function_app=(infra / "terraform" / "functionapp.tf").read_text(),
            terraform_container_apps=(infra / "terraform" / "containerapps.tf").read_text(),
        )


KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(SecretUri="


def name_problems(code: CodeNames, infra: InfraTexts) -> list[str]:
    """Where Bicep or Terraform disagree with the code's names."""
    problems: list[str] = []

    def same_list(where: str, declared: list[str], expected: tuple[str, ...]) -> None:
        missing = sorted(set(expected) - set(declared))
        extra = sorted(set(declared) - set(expected))
        if missing or extra or len(declared) != len(set(declared)):
            problems.append(f"{where}: missing {missing}, unknown {extra}, declared {declared}")

    def same(where: str, declared: str, expected: str) -> None:
        if declared != expected:
            problems.append(f"{where}: {declared!r}, the code uses {expected!r}")

    b, t = infra.bicep_main, infra.terraform_main
    lists = [
        ("blobContainerNames", "blob_container_names", code.containers),
        ("tableNames", "table_names", code.tables),
        ("queueNames", "queue_names", code.queues),
    ]
    for bicep_var, terraform_local, expected in lists:
        same_list(f"Bicep {bicep_var}", bicep_string_list(b, bicep_var), expected)
        same_list(
            f"Terraform {terraform_local}", terraform_string_list(t, terraform_local), expected
        )
    strings = [
        ("trainingQueueName", "training_queue_name", code.training_queue),
        ("ingestContainerName", "ingest_container_name", code.ingest_container),
        ("ingestFunctionName", "ingest_function_name", code.ingest_function),
    ]
    for bicep_var, terraform_local, value in strings:
        same(f"Bicep {bicep_var}", bicep_string(b, bicep_var), value)
        same(f"Terraform {terraform_local}", terraform_string(t, terraform_local), value)

    connection = code.ingest_connection
    function_app_required = {
        "CV_STORAGE_ACCOUNT_NAME",
        "CV_TRAINING_KEY",
        "CV_PREDICTION_KEY",
        "AZURE_CLIENT_ID",
        f"{connection}__accountName",
        f"{connection}__credential",
        f"{connection}__clientId",
    }
    job_required = {"CV_STORAGE_ACCOUNT_NAME", "AZURE_CLIENT_ID"}
    settings = {
        "Bicep function app settings": (
            bicep_settings(infra.bicep_function_app),
            function_app_required,
        ),
        "Terraform function app settings": (
            terraform_app_settings(infra.terraform_function_app),
            function_app_required,
        ),
        "Bicep trainer job env": (bicep_settings(infra.bicep_container_apps), job_required),
        "Terraform trainer job env": (terraform_env(infra.terraform_container_apps), job_required),
    }
    for where, (declared, required) in settings.items():
        missing = sorted(required - set(declared))
        if missing:
            problems.append(f"{where}: missing {missing}")
        unknown = sorted(n for n in declared if n.startswith("CV_") and n not in code.setting_names)
        if unknown:
            problems.append(f"{where}: {unknown} are not Settings fields (functions/settings.py)")
        if "CV_STORAGE_CONNECTION_STRING" in declared:
            problems.append(f"{where}: a storage connection string; use the managed identity")
        for key in ("CV_TRAINING_KEY", "CV_PREDICTION_KEY"):
            if key in declared and KEY_VAULT_REFERENCE not in declared[key]:
                problems.append(f"{where}: {key} is not a Key Vault reference")
    return problems

"""What the Functions host reads: the HTTP function, the blob and timer triggers, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import registered_functions

ROOT = Path(__file__).resolve().parents[2]


def test_functions_and_bindings() -> None:
    functions = registered_functions()
    assert set(functions) == {"http_app_func", "ingest_blob", "purge_predictions", "sweep_orphans"}

    http = json.loads(functions["http_app_func"].get_function_json())["bindings"]
    trigger = next(b for b in http if b["type"] == "httpTrigger")
    assert trigger["route"] == "/{*route}"
    assert trigger["authLevel"] == "ANONYMOUS"
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(trigger["methods"])

    blob = json.loads(functions["ingest_blob"].get_function_json())["bindings"]
    assert blob == [
        {
            "direction": "IN",
            "type": "blobTrigger",
            "name": "blob",
            "path": "ingest/{name}",
            "connection": "AzureWebJobsStorage",
            "source": "EventGrid",
        }
    ]

    timer = json.loads(functions["purge_predictions"].get_function_json())["bindings"]
    assert [b["type"] for b in timer] == ["timerTrigger"]
    assert timer[0]["schedule"] == "0 17 * * * *"  # hourly
    sweep = json.loads(functions["sweep_orphans"].get_function_json())["bindings"]
    assert [(b["type"], b["schedule"]) for b in sweep] == [("timerTrigger", "0 47 * * * *")]


def test_host_json_serves_routes_without_prefix() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"


def test_importing_the_function_app_does_not_import_torch() -> None:
    code = (
        "import sys, function_app, functions.api.app, functions.services.ingest;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_function_app_requirements_exclude_torch() -> None:
    lines = (ROOT / "requirements.txt").read_text().lower().splitlines()
    packages = [line.split("==")[0].strip() for line in lines if line and not line.startswith("#")]
    assert "azure-functions" in packages
    assert not {"torch", "torchvision"} & set(packages)

"""Bicep, Terraform and the code agree on the names of containers, tables and queues, on the
queue KEDA watches and the container Event Grid forwards, and on the app settings (CV_...
Settings fields, the managed identity, Key Vault references instead of key values)."""

from __future__ import annotations

import json
from dataclasses import replace

from functions.domain import names
from functions.settings import Settings
from tests.conftest import registered_functions
from tests.infra.infra_checks import CodeNames, InfraTexts, name_problems


def code_names() -> CodeNames:
    ingest = registered_functions()["ingest_blob"]
    trigger = next(
        b for b in json.loads(ingest.get_function_json())["bindings"] if b["type"] == "blobTrigger"
    )
    assert trigger["source"] == "EventGrid"
    prefix = Settings.model_config.get("env_prefix", "")
    return CodeNames(
        containers=names.CONTAINERS,
        tables=names.TABLES,
        queues=names.QUEUES,
        training_queue=names.QUEUE_TRAINING,
        ingest_container=trigger["path"].split("/", 1)[0],
        ingest_function="ingest_blob",
        ingest_connection=trigger["connection"],
        setting_names=frozenset(f"{prefix}{field}".upper() for field in Settings.model_fields),
    )


def test_infra_uses_the_code_names() -> None:
    assert code_names().ingest_container == names.CONTAINER_INGEST
    assert name_problems(code_names(), InfraTexts.read()) == []


def test_a_missing_container_is_reported() -> None:
    infra = InfraTexts.read()
    broken = replace(infra, bicep_main=infra.bicep_main.replace("  'ingest-rejected'\n", ""))

    problems = name_problems(code_names(), broken)

    assert any("Bicep blobContainerNames" in p and "ingest-rejected" in p for p in problems)


def test_a_renamed_queue_is_reported() -> None:
    infra = InfraTexts.read()
    broken = replace(
        infra,
        terraform_main=infra.terraform_main.replace(
            '"training-requests-poison"', '"training-poison"'
        ),
    )

    problems = name_problems(code_names(), broken)

    assert any("Terraform queue_names" in p and "training-poison" in p for p in problems)


def test_a_code_name_missing_from_infra_is_reported() -> None:
    code = replace(code_names(), tables=(*names.TABLES, "exports"))

    problems = name_problems(code, InfraTexts.read())

    assert any("Bicep tableNames" in p for p in problems)
    assert any("Terraform table_names" in p for p in problems)


def test_a_misspelt_or_plain_setting_is_reported() -> None:
    infra = InfraTexts.read()
    broken = replace(
        infra,
        terraform_function_app=infra.terraform_function_app.replace(
            "CV_TRAINING_KEY ", "CV_TRAINNG_KEY "
        ),
        bicep_function_app=infra.bicep_function_app.replace(
            "'@Microsoft.KeyVault(SecretUri=${predictionKeySecretUri})'", "predictionKey"
        ),
        bicep_container_apps=infra.bicep_container_apps.replace("AZURE_CLIENT_ID", "CLIENT_ID"),
    )

    problems = " | ".join(name_problems(code_names(), broken))

    assert "CV_TRAINNG_KEY" in problems and "not Settings fields" in problems
    assert "Terraform function app settings: missing ['CV_TRAINING_KEY']" in problems
    assert "Bicep function app settings: CV_PREDICTION_KEY is not a Key Vault reference" in problems
    assert "Bicep trainer job env: missing ['AZURE_CLIENT_ID']" in problems

# Open Custom Vision on Azure, the same resources as infra/main.bicep: storage, the Flex
# Consumption function app, the GPU trainer job started by KEDA, the registry, Event Grid
# ingestion, Key Vault for the API keys, monitoring and the managed identity's roles.

data "azurerm_client_config" "current" {}

data "azurerm_resource_group" "main" {
  name = var.resource_group_name
}

resource "random_string" "token" {
  length  = 13
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  token = random_string.token.result
  tags  = { "azd-env-name" = var.environment_name }

  # The names the code uses (functions/domain/names.py); tests/infra/test_infra_names.py checks
  # that they agree.
  blob_container_names  = ["images", "predictions", "models", "exports", "ingest", "ingest-rejected"]
  table_names           = ["projects", "tags", "images", "iterations", "predictions", "suggestions"]
  queue_names           = ["training-requests", "training-requests-poison"]
  training_queue_name   = "training-requests"
  ingest_container_name = "ingest"
  ingest_function_name  = "ingest_blob"
  # Where Flex Consumption keeps the function app's deployment package.
  deployment_container_name = "app-package"

  generated_names = {
    storage              = "st${local.token}"
    function_app         = "func-${local.token}"
    function_plan        = "plan-${local.token}"
    identity             = "id-${local.token}"
    key_vault            = "kv-${local.token}"
    registry             = "cr${local.token}"
    environment          = "cae-${local.token}"
    trainer_job          = "caj-trainer-${local.token}"
    log_analytics        = "log-${local.token}"
    application_insights = "appi-${local.token}"
    event_grid_topic     = "evgt-${local.token}"
  }
  names = merge(local.generated_names, var.names)
}

# The function app on Flex Consumption (Python 3.11): the HTTP API, the ingest blob trigger and
# the retention timer. Storage, Key Vault and Application Insights as the user-assigned identity;
# the API keys are Key Vault references.

resource "azurerm_service_plan" "functions" {
  #checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand; a fixed minimum is always-ready capacity that costs money while idle
  #checkov:skip=CKV_AZURE_225: Flex Consumption instances are placed by the platform; zone redundancy is a per-region opt-in left out to keep the plan available in every GPU region
  name                = local.names.function_plan
  location            = var.location
  resource_group_name = data.azurerm_resource_group.main.name
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azurerm_function_app_flex_consumption" "api" {
  name                              = local.names.function_app
  location                          = var.location
  resource_group_name               = data.azurerm_resource_group.main.name
  service_plan_id                   = azurerm_service_plan.functions.id
  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.main.primary_blob_endpoint}${local.deployment_container_name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.main.id
  runtime_name                      = "python"
  runtime_version                   = "3.11"
  maximum_instance_count            = var.function_maximum_instance_count
  instance_memory_in_mb             = var.function_instance_memory_mb
  https_only                        = true
  key_vault_reference_identity_id   = azurerm_user_assigned_identity.main.id
  tags                              = merge(local.tags, { "azd-service-name" = "api" })

  webdeploy_publish_basic_authentication_enabled = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.main.id]
  }

  site_config {
    minimum_tls_version                    = "1.2"
    http2_enabled                          = true
    application_insights_connection_string = azurerm_application_insights.main.connection_string
  }

  app_settings = {
    # The Functions host (triggers, keys) on the same account, as the managed identity. The
    # empty AzureWebJobsStorage keeps the provider from writing a key-based value.
    AzureWebJobsStorage                       = ""
    AzureWebJobsStorage__accountName          = azurerm_storage_account.main.name
    AzureWebJobsStorage__credential           = "managedidentity"
    AzureWebJobsStorage__clientId             = azurerm_user_assigned_identity.main.client_id
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.main.client_id};Authorization=AAD"
    # DefaultAzureCredential picks the user-assigned identity by its client id.
    AZURE_CLIENT_ID         = azurerm_user_assigned_identity.main.client_id
    CV_STORAGE_ACCOUNT_NAME = azurerm_storage_account.main.name
    CV_TRAINING_KEY         = "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault.main.vault_uri}secrets/${azurerm_key_vault_secret.training_key.name})"
    CV_PREDICTION_KEY       = "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault.main.vault_uri}secrets/${azurerm_key_vault_secret.prediction_key.name})"
  }

  # The identity must hold its roles before the app reads storage and Key Vault.
  depends_on = [
    azurerm_role_assignment.identity_storage,
    azurerm_role_assignment.identity_secrets,
    azurerm_role_assignment.identity_telemetry,
  ]
}

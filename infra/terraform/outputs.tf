output "AZURE_CLIENT_ID" {
  value = azurerm_user_assigned_identity.main.client_id
}

output "AZURE_CONTAINER_REGISTRY_ENDPOINT" {
  value = azurerm_container_registry.main.login_server
}

output "AZURE_KEY_VAULT_NAME" {
  value = azurerm_key_vault.main.name
}

output "AZURE_STORAGE_ACCOUNT_NAME" {
  value = azurerm_storage_account.main.name
}

output "AZURE_FUNCTION_APP_NAME" {
  value = azurerm_function_app_flex_consumption.api.name
}

output "SERVICE_API_URI" {
  value = "https://${azurerm_function_app_flex_consumption.api.default_hostname}"
}

output "TRAINER_JOB_NAME" {
  value = azapi_resource.trainer_job.name
}

output "INGEST_CONTAINER_URL" {
  value = "${azurerm_storage_account.main.primary_blob_endpoint}${local.ingest_container_name}"
}

output "INGEST_EVENTS_ENABLED" {
  value = var.enable_ingest_events
}

# The storage account: the app's blob containers, tables and queues, and the container with the
# function app's deployment package. Entra ID only (no shared keys), TLS 1.2, soft delete.

resource "azurerm_storage_account" "main" {
  #checkov:skip=CKV_AZURE_33: queue read/write/delete requests are logged to Log Analytics by the diagnostic settings below, not by classic Storage Analytics logging
  #checkov:skip=CKV_AZURE_35: the Flex Consumption function app, Event Grid and the Container Apps job reach the account over its public endpoint; access is Entra ID only (shared keys off), a VNet with private endpoints is a deployment choice this template leaves out
  #checkov:skip=CKV_AZURE_59: same as CKV_AZURE_35: public network access stays on for the serverless consumers, every request needs an Entra ID token
  #checkov:skip=CKV_AZURE_206: locally redundant storage keeps the cost of a self-hosted service low; set storage_replication_type to ZRS or GZRS for redundancy
  #checkov:skip=CKV2_AZURE_1: Microsoft-managed keys encrypt the data at rest; a customer-managed key needs a key rotation process this template does not impose
  #checkov:skip=CKV2_AZURE_33: no private endpoint, see CKV_AZURE_35
  name                              = local.names.storage
  location                          = var.location
  resource_group_name               = data.azurerm_resource_group.main.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.storage_replication_type
  access_tier                       = "Hot"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  infrastructure_encryption_enabled = true
  public_network_access_enabled     = true
  tags                              = local.tags

  network_rules {
    default_action = "Allow"
    bypass         = ["AzureServices"]
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }
}

resource "azurerm_storage_container" "app" {
  #checkov:skip=CKV2_AZURE_21: blob read requests are logged to Log Analytics by the blob service's diagnostic setting below
  for_each              = toset(concat(local.blob_container_names, [local.deployment_container_name]))
  name                  = each.value
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azurerm_storage_queue" "app" {
  for_each           = toset(local.queue_names)
  name               = each.value
  storage_account_id = azurerm_storage_account.main.id
}

# Tables through Resource Manager (azapi): azurerm_storage_table creates tables through the
# table data plane, which would make the one running Terraform need a table data role first.
resource "azapi_resource" "table" {
  for_each  = toset(local.table_names)
  type      = "Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01"
  name      = each.value
  parent_id = "${azurerm_storage_account.main.id}/tableServices/default"
  body      = {}
}

# Request logs (read, write, delete) of the blob, queue and table services, to Log Analytics.
resource "azurerm_monitor_diagnostic_setting" "storage_services" {
  for_each                   = toset(["blobServices", "queueServices", "tableServices"])
  name                       = "logs"
  target_resource_id         = "${azurerm_storage_account.main.id}/${each.value}/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

# Event Grid: the storage account's system topic, and (once the function code is deployed,
# enable_ingest_events = true) the subscription that sends blob-created events of the ingest
# container to the `ingest_blob` blob trigger through the blobs extension's webhook.

resource "azurerm_eventgrid_system_topic" "storage" {
  name                = local.names.event_grid_topic
  location            = var.location
  resource_group_name = data.azurerm_resource_group.main.name
  source_resource_id  = azurerm_storage_account.main.id
  topic_type          = "Microsoft.Storage.StorageAccounts"
  tags                = local.tags
}

data "azurerm_function_app_host_keys" "api" {
  count               = var.enable_ingest_events ? 1 : 0
  name                = azurerm_function_app_flex_consumption.api.name
  resource_group_name = data.azurerm_resource_group.main.name
}

resource "azurerm_eventgrid_system_topic_event_subscription" "ingest" {
  count                 = var.enable_ingest_events ? 1 : 0
  name                  = "${local.ingest_container_name}-blob-created"
  system_topic          = azurerm_eventgrid_system_topic.storage.name
  resource_group_name   = data.azurerm_resource_group.main.name
  event_delivery_schema = "EventGridSchema"
  included_event_types  = ["Microsoft.Storage.BlobCreated"]

  subject_filter {
    subject_begins_with = "/blobServices/default/containers/${local.ingest_container_name}/blobs/"
  }

  webhook_endpoint {
    # The blobs_extension system key authorizes Event Grid.
    url                               = "https://${azurerm_function_app_flex_consumption.api.default_hostname}/runtime/webhooks/blobs?functionName=Host.Functions.${local.ingest_function_name}&code=${data.azurerm_function_app_host_keys.api[0].blobs_extension_key}"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }
}

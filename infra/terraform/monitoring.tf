# Log Analytics and workspace-based Application Insights (Entra ID ingestion only).

resource "azurerm_log_analytics_workspace" "main" {
  name                = local.names.log_analytics
  location            = var.location
  resource_group_name = data.azurerm_resource_group.main.name
  sku                 = "PerGB2018"
  retention_in_days   = 30
  tags                = local.tags
}

resource "azurerm_application_insights" "main" {
  name                          = local.names.application_insights
  location                      = var.location
  resource_group_name           = data.azurerm_resource_group.main.name
  workspace_id                  = azurerm_log_analytics_workspace.main.id
  application_type              = "web"
  local_authentication_disabled = true
  tags                          = local.tags
}

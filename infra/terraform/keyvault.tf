# Key Vault with the Training-Key and Prediction-Key; the function app reads them through Key
# Vault references (RBAC authorization, soft delete and purge protection on).

resource "azurerm_key_vault" "main" {
  #checkov:skip=CKV_AZURE_109: the function app resolves Key Vault references over the public endpoint (Flex Consumption without a VNet); only Entra ID principals with an RBAC role can read a secret
  #checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109
  #checkov:skip=CKV2_AZURE_32: no private endpoint, see CKV_AZURE_109
  name                          = local.names.key_vault
  location                      = var.location
  resource_group_name           = data.azurerm_resource_group.main.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  soft_delete_retention_days    = 7
  purge_protection_enabled      = true
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

resource "azurerm_key_vault_secret" "training_key" {
  #checkov:skip=CKV_AZURE_41: the keys are API keys that clients hold; an expiry date would silently lock every client out, so rotation is a manual step (set a new value, clients update)
  name         = "training-key"
  value        = var.training_key
  content_type = "text/plain"
  key_vault_id = azurerm_key_vault.main.id
  depends_on   = [azurerm_role_assignment.deployer_secrets]
}

resource "azurerm_key_vault_secret" "prediction_key" {
  #checkov:skip=CKV_AZURE_41: the keys are API keys that clients hold; an expiry date would silently lock every client out, so rotation is a manual step (set a new value, clients update)
  name         = "prediction-key"
  value        = var.prediction_key
  content_type = "text/plain"
  key_vault_id = azurerm_key_vault.main.id
  depends_on   = [azurerm_role_assignment.deployer_secrets]
}

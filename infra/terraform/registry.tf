# The container registry for the trainer image: admin user off, the job pulls as the managed
# identity (AcrPull).

resource "azurerm_container_registry" "main" {
  #checkov:skip=CKV_AZURE_139: the deployer and the Container Apps job reach the registry over its public endpoint; pushes and pulls need Entra ID (admin user and anonymous pull are off)
  #checkov:skip=CKV_AZURE_163: vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan with its own cost; enable it there
  #checkov:skip=CKV_AZURE_164: content trust (signed images) needs the Premium tier; one image built from this repository does not need it
  #checkov:skip=CKV_AZURE_165: geo-replication needs the Premium tier; the trainer pulls one image per job in one region
  #checkov:skip=CKV_AZURE_166: image quarantine needs the Premium tier and a scanner that releases images
  #checkov:skip=CKV_AZURE_167: a retention policy for untagged manifests needs the Premium tier
  #checkov:skip=CKV_AZURE_233: zone redundancy needs the Premium tier; a registry outage delays new jobs but loses no data
  #checkov:skip=CKV_AZURE_237: dedicated data endpoints need the Premium tier
  name                   = local.names.registry
  location               = var.location
  resource_group_name    = data.azurerm_resource_group.main.name
  sku                    = "Basic"
  admin_enabled          = false
  anonymous_pull_enabled = false
  tags                   = local.tags
}

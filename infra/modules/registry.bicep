// The container registry for the trainer image: admin user off, the job pulls with its managed
// identity (AcrPull), azd pushes with the deployer's Entra ID credentials.

param location string
param tags object
param containerRegistryName string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: azd and the Container Apps job reach the registry over its public endpoint; pushes and pulls need Entra ID (admin user and anonymous pull are off)
  // checkov:skip=CKV_AZURE_163: vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan with its own cost; enable it there
  // checkov:skip=CKV_AZURE_166: image quarantine needs the Premium tier and a scanner that releases images
  // checkov:skip=CKV_AZURE_233: zone redundancy needs the Premium tier; a registry outage delays new jobs but loses no data
  name: containerRegistryName
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output id string = registry.id
output name string = registry.name
output loginServer string = registry.properties.loginServer

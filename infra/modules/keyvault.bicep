// Key Vault with the Training-Key and Prediction-Key values; the function app reads them through
// Key Vault references (RBAC authorization, soft delete and purge protection on).

param location string
param tags object
param keyVaultName string
@secure()
param trainingKey string
@secure()
param predictionKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the function app resolves Key Vault references over the public endpoint (Flex Consumption without a VNet); only Entra ID principals with an RBAC role can read a secret
  // checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource trainingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: the keys are API keys that clients hold; an expiry date would silently lock every client out, so rotation is a manual step (set a new value, clients update)
  parent: vault
  name: 'training-key'
  properties: {
    value: trainingKey
    contentType: 'text/plain'
  }
}

resource predictionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: the keys are API keys that clients hold; an expiry date would silently lock every client out, so rotation is a manual step (set a new value, clients update)
  parent: vault
  name: 'prediction-key'
  properties: {
    value: predictionKey
    contentType: 'text/plain'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless secret URIs: a Key Vault reference then follows the latest version.
output trainingKeySecretUri string = '${vault.properties.vaultUri}secrets/${trainingKeySecret.name}'
output predictionKeySecretUri string = '${vault.properties.vaultUri}secrets/${predictionKeySecret.name}'

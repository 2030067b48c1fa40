// The function app on Flex Consumption (Python 3.11): the HTTP API, the ingest blob trigger and
// the retention timer. It reaches storage, Key Vault and Application Insights as the
// user-assigned identity; the API keys are Key Vault references, not values.

param location string
param tags object
param planName string
param functionAppName string
param identityId string
param identityClientId string
param storageAccountName string
param storageBlobEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
param trainingKeySecretUri string
param predictionKeySecretUri string
@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int
@description('Memory of one instance; onnxruntime sessions live here (CV_MODEL_CACHE_MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption instances are placed by the platform; zone redundancy is a per-region opt-in left out to keep the plan available in every GPU region
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: clients authenticate with the Training-Key and Prediction-Key headers, as Custom Vision's SDKs send them; client certificates would break the SDKs
  // checkov:skip=CKV_AZURE_222: the API is public by design (Custom Vision's SDKs and the portal call it from anywhere); every request needs a key
  // checkov:skip=CKV_AZURE_213: the API has no health route of its own and Flex Consumption does not use App Service health checks to recycle instances
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand; a fixed minimum is always-ready capacity that costs money while idle
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [
        // The Functions host (triggers, keys) on the same account, as the managed identity.
        { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        // DefaultAzureCredential picks the user-assigned identity by its client id.
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        { name: 'CV_STORAGE_ACCOUNT_NAME', value: storageAccountName }
        { name: 'CV_TRAINING_KEY', value: '@Microsoft.KeyVault(SecretUri=${trainingKeySecretUri})' }
        { name: 'CV_PREDICTION_KEY', value: '@Microsoft.KeyVault(SecretUri=${predictionKeySecretUri})' }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName

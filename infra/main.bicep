// Open Custom Vision on Azure: storage, the Flex Consumption function app (API, ingestion,
// retention), the GPU trainer as a Container Apps job started by KEDA, the registry for its image,
// Event Grid ingestion, Key Vault for the API keys, and monitoring. Deploy with `azd up`, or
// `az deployment group create -g RG -f infra/main.bicep -p infra/main.parameters.json` (fill the
// ${...} values). infra/terraform/ holds the same with the azurerm provider.
targetScope = 'resourceGroup'

@description('Name of the environment (azd environment name); part of every generated name.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Region of every resource; pick one with serverless GPUs for Container Apps.')
param location string = resourceGroup().location

@description('Serverless GPU workload profile of the trainer job.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@secure()
@minLength(8)
@description('Value of the Training-Key header (CV_TRAINING_KEY), stored in Key Vault.')
param trainingKey string

@secure()
@minLength(8)
@description('Value of the Prediction-Key header (CV_PREDICTION_KEY), stored in Key Vault.')
param predictionKey string

@description('Object id of the deploying user or service principal: gets data access to storage and the secrets. Empty: none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

@description('The trainer image (azd sets it after pushing); the placeholder runs nothing useful.')
param trainerImage string = ''

@description('Create the Event Grid subscription to the ingest_blob trigger. Needs the function code deployed (azd does it in a postdeploy hook).')
param enableIngestEvents bool = false

@description('Most trainings (job executions) running at once; each takes one GPU of your quota.')
@minValue(1)
param trainerMaxExecutions int = 4

@description('Replicas per execution; each takes one queued message.')
@minValue(1)
param trainerParallelism int = 1

@description('Seconds one training may run (Advanced trainings stop within reservedBudgetInHours, default 1 hour).')
@minValue(60)
param trainerReplicaTimeoutSeconds int = 7200

@description('Restarts of a failed replica within one execution; the queue redelivers as well.')
@minValue(0)
param trainerReplicaRetryLimit int = 1

@description('Seconds between KEDA looks at the training queue.')
@minValue(5)
param trainerPollingIntervalSeconds int = 30

@description('Most function app instances.')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 100

@description('Memory of one function app instance, MB.')
@allowed([512, 2048, 4096])
param functionInstanceMemoryMB int = 2048

@description('Replication of the storage account.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
param storageSku string = 'Standard_LRS'

// Names: empty means generated from the environment (azd's abbreviations + a unique token).
param storageAccountName string = ''
param functionAppName string = ''
param functionPlanName string = ''
param identityName string = ''
param keyVaultName string = ''
param containerRegistryName string = ''
param containerAppsEnvironmentName string = ''
param trainerJobName string = ''
param logAnalyticsName string = ''
param applicationInsightsName string = ''
param eventGridTopicName string = ''

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// The names the code uses (functions/domain/names.py); tests/infra/test_infra_names.py checks
// that they agree.
var blobContainerNames = [
  'images'
  'predictions'
  'models'
  'exports'
  'ingest'
  'ingest-rejected'
]
var tableNames = [
  'projects'
  'tags'
  'images'
  'iterations'
  'predictions'
  'suggestions'
]
var queueNames = [
  'training-requests'
  'training-requests-poison'
]
var trainingQueueName = 'training-requests'
var ingestContainerName = 'ingest'
var ingestFunctionName = 'ingest_blob'
// Where Flex Consumption keeps the function app's deployment package.
var deploymentContainerName = 'app-package'

var names = {
  storage: !empty(storageAccountName) ? storageAccountName : 'st${resourceToken}'
  functionApp: !empty(functionAppName) ? functionAppName : 'func-${resourceToken}'
  functionPlan: !empty(functionPlanName) ? functionPlanName : 'plan-${resourceToken}'
  identity: !empty(identityName) ? identityName : 'id-${resourceToken}'
  keyVault: !empty(keyVaultName) ? keyVaultName : 'kv-${resourceToken}'
  registry: !empty(containerRegistryName) ? containerRegistryName : 'cr${resourceToken}'
  environment: !empty(containerAppsEnvironmentName) ? containerAppsEnvironmentName : 'cae-${resourceToken}'
  trainerJob: !empty(trainerJobName) ? trainerJobName : 'caj-trainer-${resourceToken}'
  logAnalytics: !empty(logAnalyticsName) ? logAnalyticsName : 'log-${resourceToken}'
  applicationInsights: !empty(applicationInsightsName) ? applicationInsightsName : 'appi-${resourceToken}'
  eventGridTopic: !empty(eventGridTopicName) ? eventGridTopicName : 'evgt-${resourceToken}'
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    tags: tags
    identityName: names.identity
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageAccountName: names.storage
    storageSku: storageSku
    blobContainerNames: blobContainerNames
    tableNames: tableNames
    queueNames: queueNames
    deploymentContainerName: deploymentContainerName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    keyVaultName: names.keyVault
    trainingKey: trainingKey
    predictionKey: predictionKey
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    tags: tags
    containerRegistryName: names.registry
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    containerRegistryName: registry.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: principalId
    principalType: principalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  // The identity must hold its roles before the app reads storage and Key Vault.
  dependsOn: [rbac]
  params: {
    location: location
    tags: tags
    planName: names.functionPlan
    functionAppName: names.functionApp
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    trainingKeySecretUri: keyVault.outputs.trainingKeySecretUri
    predictionKeySecretUri: keyVault.outputs.predictionKeySecretUri
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
  }
}

module containerApps 'modules/containerapps.bicep' = {
  name: 'containerapps'
  // The job pulls from the registry and reads the queue as the identity.
  dependsOn: [rbac]
  params: {
    location: location
    tags: tags
    environmentName: names.environment
    jobName: names.trainerJob
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    trainingQueueName: trainingQueueName
    registryLoginServer: registry.outputs.loginServer
    image: !empty(trainerImage) ? trainerImage : 'mcr.microsoft.com/k8se/quickstart-jobs:latest'
    gpuProfileType: gpuProfileType
    maxExecutions: trainerMaxExecutions
    parallelism: trainerParallelism
    replicaTimeoutSeconds: trainerReplicaTimeoutSeconds
    replicaRetryLimit: trainerReplicaRetryLimit
    pollingIntervalSeconds: trainerPollingIntervalSeconds
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    location: location
    tags: tags
    systemTopicName: names.eventGridTopic
    storageAccountId: storage.outputs.id
    functionAppName: functionApp.outputs.name
    ingestContainerName: ingestContainerName
    ingestFunctionName: ingestFunctionName
    enableSubscription: enableIngestEvents
  }
}

// azd reads these into the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_APPS_ENVIRONMENT_ID string = containerApps.outputs.environmentId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output SERVICE_TRAINER_NAME string = containerApps.outputs.jobName
output TRAINER_JOB_NAME string = containerApps.outputs.jobName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.applicationInsightsConnectionString
output INGEST_CONTAINER_URL string = '${storage.outputs.blobEndpoint}${ingestContainerName}'
output INGEST_EVENTS_ENABLED bool = eventGrid.outputs.subscriptionEnabled

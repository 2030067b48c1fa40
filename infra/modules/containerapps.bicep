// The Container Apps environment with a serverless GPU workload profile, and the trainer job:
// KEDA's azure-queue scaler starts one execution per message on `training-requests` (a training
// or an export); each execution runs `python -m trainer_job`, handles one message and exits.

param location string
param tags object
param environmentName string
param jobName string
param logAnalyticsWorkspaceId string
param identityId string
param identityClientId string
param storageAccountName string
param trainingQueueName string
param registryLoginServer string
@description('The trainer image; the placeholder until azd (or you) pushes the real one.')
param image string
@description('Serverless GPU profile type: Consumption-GPU-NC8as-T4 or Consumption-GPU-NC24-A100.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string
@description('Most executions running at once, i.e. trainings in parallel (each needs a GPU from your quota).')
@minValue(1)
param maxExecutions int
@description('Replicas per execution. Each replica takes one message, so 1 is one job per message.')
@minValue(1)
param parallelism int
@description('Seconds one execution may run before it is stopped (cover the Advanced training budget).')
@minValue(60)
param replicaTimeoutSeconds int
@description('Times a failed replica is restarted in the same execution (the queue retries too, see CV_TRAINER_MAX_DELIVERIES).')
@minValue(0)
param replicaRetryLimit int
@description('Seconds between KEDA looks at the queue.')
@minValue(5)
param pollingIntervalSeconds int

// What one replica gets on each GPU profile (the whole GPU node of the profile).
var gpuSizes = {
  'Consumption-GPU-NC8as-T4': { cpu: '8', memory: '56Gi' }
  'Consumption-GPU-NC24-A100': { cpu: '24', memory: '220Gi' }
}
var gpuProfileName = 'gpu'

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    // Logs go to Log Analytics through the diagnostic setting below (no workspace shared key).
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: gpuProfileType
      }
    ]
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: environment
  name: 'logs'
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { categoryGroup: 'allLogs', enabled: true }
    ]
  }
}

resource trainerJob 'Microsoft.App/jobs@2025-01-01' = {
  name: jobName
  location: location
  tags: union(tags, { 'azd-service-name': 'trainer' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: gpuProfileName
    configuration: {
      triggerType: 'Event'
      replicaTimeout: replicaTimeoutSeconds
      replicaRetryLimit: replicaRetryLimit
      eventTriggerConfig: {
        parallelism: parallelism
        replicaCompletionCount: parallelism
        scale: {
          minExecutions: 0
          maxExecutions: maxExecutions
          pollingInterval: pollingIntervalSeconds
          rules: [
            {
              name: 'training-requests'
              type: 'azure-queue'
              // One execution per queued message; the scaler reads the queue as the identity.
              metadata: {
                accountName: storageAccountName
                queueName: trainingQueueName
                queueLength: '1'
              }
              identity: identityId
            }
          ]
        }
      }
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'trainer'
          image: image
          command: ['python', '-m', 'trainer_job']
          resources: {
            cpu: json(gpuSizes[gpuProfileType].cpu)
            memory: gpuSizes[gpuProfileType].memory
          }
          env: [
            { name: 'CV_STORAGE_ACCOUNT_NAME', value: storageAccountName }
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
          ]
        }
      ]
    }
  }
}

output environmentId string = environment.id
output environmentName string = environment.name
output jobName string = trainerJob.name
output jobId string = trainerJob.id

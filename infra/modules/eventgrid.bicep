// Event Grid: the storage account's system topic, and (once the function code is deployed) the
// subscription that sends blob-created events of the ingest container to the `ingest_blob` blob
// trigger through the blobs extension's webhook.

param location string
param tags object
param systemTopicName string
param storageAccountId string
param functionAppName string
param ingestContainerName string
param ingestFunctionName string
@description('Create the subscription. Event Grid validates the webhook when it is created, and the blobs extension answers only once the function code runs, so this is false on the first deployment.')
param enableSubscription bool

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource ingestSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (enableSubscription) {
  parent: systemTopic
  name: '${ingestContainerName}-blob-created'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // The blobs_extension system key authorizes Event Grid; it is read at deployment time.
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${ingestFunctionName}&code=${listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${ingestContainerName}/blobs/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output systemTopicName string = systemTopic.name
output subscriptionEnabled bool = enableSubscription

// The Event Grid subscription for SUBMIT_MODE=immediate: BlobCreated events of the chunk container,
// delivered to the blob trigger's Event Grid endpoint (the blobs extension webhook of the app).
//
// Its own file because the webhook's key (the host's `blobs_extension` system key) only exists once
// the function code is deployed and the host has started the blob trigger with source EventGrid: a
// `listKeys` evaluated before that fails, and Event Grid's validation handshake needs the running
// endpoint too. main.bicep deploys this as a module only when `functionCodeDeployed` is true; the
// postdeploy hook (infra/hooks/postdeploy.sh) deploys this file directly after `azd deploy`.

@description('The function app (Flex Consumption) hosting chunk_blob_trigger.')
param functionAppName string

@description('The Event Grid system topic of the chunk storage account.')
param systemTopicName string

@description('The chunk storage account (the system topic source, and the dead-letter account).')
param storageAccountName string

@description('The chunk container: only its blobs raise events (SENSOR_CONTAINER).')
param chunkContainerName string = 'sensor-data'

@description('Container receiving events Event Grid could not deliver.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Name of the subscription; the same name as the coalesce (queue) subscription, so switching SUBMIT_MODE replaces the endpoint in place.')
param subscriptionName string = 'chunk-blob-created'

@description('Name of the function, as the blobs extension knows it (Host.Functions.<name>).')
param functionName string = 'chunk_blob_trigger'

resource site 'Microsoft.Web/sites@2023-12-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

// Keep this filter identical to `chunkEventFilter` in main.bicep (tests/infra checks they match).
var chunkEventFilter = {
  includedEventTypes: [
    'Microsoft.Storage.BlobCreated'
  ]
  subjectBeginsWith: '/blobServices/default/containers/${chunkContainerName}/'
  advancedFilters: [
    {
      operatorType: 'StringIn'
      key: 'data.api'
      values: [
        'PutBlob'
        'PutBlockList'
        'FlushWithClose'
        'CopyBlob'
      ]
    }
  ]
}

var blobsExtensionKey = listKeys('${site.id}/host/default', '2023-12-01').systemKeys.blobs_extension

resource webhookSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: chunkEventFilter
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output subscriptionName string = webhookSubscription.name

// The Azure side of the sensor pipeline, for `azd up` or `az deployment group create`.
//
// Modelled on Azure-Samples/functions-quickstart-python-azd-eventgrid-blob (Flex Consumption, a
// user-assigned managed identity for every storage connection, Event Grid -> blob trigger), but
// written as plain resource declarations instead of Azure Verified Modules (br/public:avm/...):
// the registry cannot be reached where this was written, and plain resources let tests/infra read
// every property. No account key or connection string appears anywhere: shared-key access is
// disabled on the storage account and every connection is identity-based.
//
// Resource-group scope: `azd` asks for (or reads AZURE_RESOURCE_GROUP) the group to deploy into.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name; with the resource group it seeds the unique suffix of every default name.')
param environmentName string

@description('Region of every resource (a region offering Flex Consumption).')
param location string = resourceGroup().location

@description('How chunk events reach the app (SUBMIT_MODE). immediate: Event Grid -> the blob trigger webhook -> one workflow per chunk. coalesce: Event Grid -> the events queue -> the timer drainer, in batches.')
@allowed([
  'immediate'
  'coalesce'
])
param submitMode string = 'immediate'

@description('True once the function code is deployed (the postdeploy hook sets FUNCTION_CODE_DEPLOYED): only then can the immediate-mode webhook subscription be created. Ignored in coalesce mode.')
param functionCodeDeployed bool = false

@description('Argo Server base URL, reachable from the function app, e.g. https://argo.example.com:2746 (ARGO_SERVER_URL).')
param argoServerUrl string

@secure()
@description('Argo Server bearer token (the output of `argo auth token`, with or without "Bearer "). Stored in Key Vault only.')
param argoToken string

@description('Kubernetes namespace of the WorkflowTemplate (ARGO_NAMESPACE).')
param argoNamespace string = 'argo'

@description('Name of the WorkflowTemplate compiled from the Metaflow flow (ARGO_WORKFLOW_TEMPLATE).')
param argoWorkflowTemplate string = 'sensorprocessingflow'

@description('Path of a CA bundle file inside the deployed package to verify the Argo Server with; empty = the system CAs (ARGO_CA_BUNDLE).')
param argoCaBundle string = ''

@description('Container the IoT devices write chunks to (SENSOR_CONTAINER).')
param chunkContainerName string = 'sensor-data'

@description('Container the flow writes results to (SENSOR_RESULTS_CONTAINER); must differ from the chunk container.')
param resultsContainerName string = 'sensor-features'

@description('Queue of chunk events in coalesce mode (SENSOR_EVENTS_QUEUE); "<name>-poison" is created too.')
param eventsQueueName string = 'chunk-events'

@description('Table of the claim ledger (SENSOR_LEDGER_TABLE).')
param ledgerTableName string = 'chunkledger'

@description('Container for events Event Grid could not deliver.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Override of the function app name; empty = func-<suffix>.')
param functionAppName string = ''

@description('Override of the storage account name (3-24 lowercase letters and digits); empty = st<suffix>.')
param storageAccountName string = ''

@description('Override of the Key Vault name (3-24 characters); empty = kv-<suffix>.')
param keyVaultName string = ''

@description('Storage redundancy of the chunk account (zone-redundant by default: the chunks are the source data).')
param storageSku string = 'Standard_ZRS'

@description('Flex Consumption instance memory (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption scale-out limit.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var appName = !empty(functionAppName) ? functionAppName : 'func-${resourceToken}'
var storageName = !empty(storageAccountName) ? storageAccountName : 'st${resourceToken}'
var vaultName = !empty(keyVaultName) ? keyVaultName : 'kv-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 12)}'
var systemTopicName = 'evgt-${resourceToken}'
var chunkSubscriptionName = 'chunk-blob-created'
var argoTokenSecretName = 'argo-token'

// Built-in role definitions (GUIDs are the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// ---------------------------------------------------------------- identity

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------- monitoring

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true // telemetry is sent with the identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING)
  }
}

// ---------------------------------------------------------------- storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:default Allow: the Flex Consumption app reaches storage over the public endpoint, no VNet integration yet (see docs/deploy.md, left undone); shared-key access is off and every caller needs an RBAC role
  //checkov:skip=CKV_AZURE_59:public network access stays on for the same reason (no VNet integration yet (see docs/deploy.md, left undone)); anonymous blob access is off (allowBlobPublicAccess: false)
  //checkov:skip=CKV_AZURE_206:zone-redundant (Standard_ZRS) by default; geo-redundancy is a cost choice, set storageSku to Standard_GZRS or Standard_RAGZRS for it
  //checkov:skip=CKV_AZURE_43:the name is computed ('st' + uniqueString, 15 lowercase letters and digits) or given by the storageAccountName parameter, which checkov cannot evaluate
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no account key can be used, so none is handed out
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource chunkContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: chunkContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource resultsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: resultsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: eventsQueueName
}

resource eventsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${eventsQueueName}-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
}

// ---------------------------------------------------------------- Key Vault

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:the app resolves the Key Vault reference over the public endpoint, no VNet integration yet (see docs/deploy.md, left undone); access is RBAC-only (Key Vault Secrets User for the app's identity)
  //checkov:skip=CKV_AZURE_189:public network access needed by the app's Key Vault reference, no VNet integration yet (see docs/deploy.md, left undone)
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource argoTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:the Argo token's lifetime is set where it is issued (the Argo service account); an expiry here would only stop submissions without rotating anything. Rotate by re-deploying with a new argoToken
  parent: keyVault
  name: argoTokenSecretName
  properties: {
    value: argoToken
    contentType: 'text/plain'
  }
}

// ---------------------------------------------------------------- function app (Flex Consumption)

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  //checkov:skip=CKV_AZURE_225:Flex Consumption (FC1): zone redundancy is a per-region option of Flex not declared here; the app is event-driven and retried by Event Grid (24 h) and the cron fallback
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  //checkov:skip=CKV_AZURE_222:the app must be public: Event Grid delivers to its blobs-extension webhook and operators call its HTTP triggers (function keys)
  //checkov:skip=CKV_AZURE_17:no client certificates: Event Grid's webhook delivery cannot present one; callers authenticate with function keys
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero by design; no always-ready instances (cost), events are retried by Event Grid
  //checkov:skip=CKV_AZURE_213:health checks do not apply to Flex Consumption function apps (no fixed instances to evict)
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'function-app'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${appIdentity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: appIdentity.id // resolve @Microsoft.KeyVault(...) with the user-assigned identity
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: appIdentity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every setting the code reads (function_app/settings.py) with its documented default, plus the
// host's. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION: the
// runtime comes from functionAppConfig.runtime. tests/infra/test_bicep.py checks this list.
resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  //checkov:skip=CKV_AZURE_13:false positive: this is the appsettings resource, not web config; callers authenticate with function keys (AuthLevel.FUNCTION), Easy Auth is not used
  //checkov:skip=CKV_AZURE_63:false positive: appsettings, not web config; logs go to Application Insights
  //checkov:skip=CKV_AZURE_65:false positive: appsettings, not web config; logs go to Application Insights
  //checkov:skip=CKV_AZURE_66:false positive: appsettings, not web config; logs go to Application Insights
  //checkov:skip=CKV_AZURE_80:false positive: appsettings, not web config; the runtime is Python 3.11 (functionAppConfig.runtime), not .NET
  //checkov:skip=CKV_AZURE_88:false positive: appsettings, not web config; Flex Consumption has no Azure Files content share
  //checkov:skip=CKV_AZURE_222:false positive: appsettings, not web config; see the same skip on functionApp
  parent: functionApp
  name: 'appsettings'
  properties: {
    // The host's storage, identity-based.
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: appIdentity.properties.clientId
    // The chunk storage (connection "SENSOR_STORAGE" of the blob trigger, and the app's clients).
    SENSOR_STORAGE__blobServiceUri: storage.properties.primaryEndpoints.blob
    SENSOR_STORAGE__queueServiceUri: storage.properties.primaryEndpoints.queue
    SENSOR_STORAGE__tableServiceUri: storage.properties.primaryEndpoints.table
    SENSOR_STORAGE__credential: 'managedidentity'
    SENSOR_STORAGE__clientId: appIdentity.properties.clientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'
    // The Python worker then calls configure_azure_monitor() itself and the app records its metrics and
    // spans through the OpenTelemetry API (docs/telemetry.md); the app never configures an exporter.
    PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
    SENSOR_CONTAINER: chunkContainerName
    SENSOR_RESULTS_CONTAINER: resultsContainerName
    BLOB_TRIGGER_SOURCE: 'EventGrid'
    SUBMIT_BACKEND: 'argo'
    SUBMIT_MODE: submitMode
    ARGO_SERVER_URL: argoServerUrl
    ARGO_NAMESPACE: argoNamespace
    ARGO_WORKFLOW_TEMPLATE: argoWorkflowTemplate
    ARGO_TOKEN: '@Microsoft.KeyVault(SecretUri=${argoTokenSecret.properties.secretUri})'
    ARGO_CA_BUNDLE: argoCaBundle
    ARGO_INSECURE_SKIP_VERIFY: 'false'
    ARGO_CONNECT_TIMEOUT: '3.05'
    ARGO_READ_TIMEOUT: '10'
    ARGO_RETRY_SECONDS: '20'
    ARGO_MAX_ATTEMPTS: '6'
    MAX_CHUNKS_PER_REQUEST: '100'
    MAX_CHUNKS_PARAM_BYTES: '65536'
    SENSOR_EVENTS_QUEUE: eventsQueueName
    SENSOR_LEDGER_TABLE: ledgerTableName
    COALESCE_SCHEDULE: '*/30 * * * * *'
    COALESCE_MAX_IN_FLIGHT: '20'
    COALESCE_MAX_CHUNKS: '200'
    COALESCE_MAX_DEQUEUE: '5'
    COALESCE_VISIBILITY_SECONDS: '300'
    COALESCE_DEADLINE_SECONDS: '240'
    SENSOR_CLAIM_STALE_SECONDS: '600'
  }
  dependsOn: [
    // The host starts using storage and Key Vault as soon as these settings land.
    blobOwnerAssignment
    queueContributorAssignment
    tableContributorAssignment
    keyVaultSecretsUserAssignment
    metricsPublisherAssignment
  ]
}

// ---------------------------------------------------------------- role assignments

resource blobOwnerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource keyVaultSecretsUserAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, appIdentity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisherAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appIdentity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid delivers to the queue and dead-letters to the container with the system topic's own
// identity (shared-key access is off, so it cannot use the account key).
resource topicQueueSenderAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, systemTopic.id, roles.storageQueueDataMessageSender)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicDeadLetterAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, systemTopic.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------- Event Grid

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Keep this filter identical to `chunkEventFilter` in app/webhook-subscription.bicep.
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

// coalesce: Event Grid -> the events queue (base64 EventGrid-schema messages, never expiring), read
// by the timer drainer.
resource queueSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (submitMode == 'coalesce') {
  parent: systemTopic
  name: chunkSubscriptionName
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: chunkEventFilter
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: storage.id
          queueName: eventsQueueName
          queueMessageTimeToLiveInSeconds: -1
        }
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
  dependsOn: [
    eventsQueue
    deadLetterContainer
    topicQueueSenderAssignment
    topicDeadLetterAssignment
  ]
}

// immediate: Event Grid -> the blob trigger's webhook. A module so that its listKeys is evaluated
// only when deployed, i.e. once the code (and so the blobs_extension key) exists.
module webhookSubscription 'app/webhook-subscription.bicep' = if ((submitMode == 'immediate') && functionCodeDeployed) {
  name: 'chunk-webhook-subscription'
  params: {
    functionAppName: functionApp.name
    systemTopicName: systemTopic.name
    storageAccountName: storage.name
    chunkContainerName: chunkContainerName
    deadLetterContainerName: deadLetterContainerName
    subscriptionName: chunkSubscriptionName
  }
  dependsOn: [
    appSettings
    deadLetterContainer
    topicDeadLetterAssignment
  ]
}

// ---------------------------------------------------------------- outputs (azd stores them in .azure/<env>/.env)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.name
output SERVICE_FUNCTION_APP_BASE_URL string = 'https://${functionApp.properties.defaultHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output AZURE_KEY_VAULT_NAME string = keyVault.name
output EVENTGRID_SYSTEM_TOPIC_NAME string = systemTopic.name
output CHUNK_CONTAINER_NAME string = chunkContainerName
output DEAD_LETTER_CONTAINER_NAME string = deadLetterContainerName
output CHUNK_SUBSCRIPTION_NAME string = chunkSubscriptionName
output SUBMIT_MODE string = submitMode
output APP_IDENTITY_CLIENT_ID string = appIdentity.properties.clientId

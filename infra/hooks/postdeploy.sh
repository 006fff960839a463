#!/bin/sh
# azd postdeploy hook: once the code is deployed, the host has created the blobs_extension system
# key and serves the Event Grid handshake, so the immediate-mode subscription can be created.
# Coalesce mode needs nothing here (main.bicep created the queue subscription at provision time).
# Needs: az (logged in, with Bicep: `az bicep install`), azd; run from the repository root.
set -eu

eval "$(azd env get-values | sed -n 's/^\([A-Z_][A-Z0-9_]*\)=/export \1=/p')"

if [ "${SUBMIT_MODE:-immediate}" != "immediate" ]; then
  echo "postdeploy: SUBMIT_MODE=${SUBMIT_MODE}: the queue subscription is part of main.bicep; nothing to do"
  exit 0
fi

# The key appears when the host starts the blob trigger; a cold Flex app may need a moment.
tries=0
until [ -n "$(az functionapp keys list -g "$RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
               --query systemKeys.blobs_extension -o tsv 2>/dev/null)" ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge 20 ]; then
    echo "postdeploy: no blobs_extension key on $AZURE_FUNCTION_APP_NAME after 10 minutes; is chunk_blob_trigger indexed?" >&2
    exit 1
  fi
  curl -fsS -o /dev/null "https://$(az functionapp show -g "$RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" --query defaultHostName -o tsv)/" || true
  sleep 30
done

az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name chunk-webhook-subscription \
  --template-file infra/app/webhook-subscription.bicep \
  --parameters functionAppName="$AZURE_FUNCTION_APP_NAME" \
               systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
               chunkContainerName="$CHUNK_CONTAINER_NAME" \
               deadLetterContainerName="$DEAD_LETTER_CONTAINER_NAME" \
               subscriptionName="$CHUNK_SUBSCRIPTION_NAME" \
  --output none

# From now on `azd provision` keeps the subscription itself (main.bicep's module).
azd env set FUNCTION_CODE_DEPLOYED true
echo "postdeploy: Event Grid subscription $CHUNK_SUBSCRIPTION_NAME -> chunk_blob_trigger created"

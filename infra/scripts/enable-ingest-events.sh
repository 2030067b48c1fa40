#!/bin/sh
# azd postdeploy hook: once the function code runs, the blobs extension can answer Event Grid's
# webhook validation, so provision again with the ingest subscription switched on. Runs once per
# environment; later deployments find it on and do nothing.
set -eu
if [ "$(azd env get-value ENABLE_INGEST_EVENTS 2>/dev/null || true)" = "true" ]; then
  exit 0
fi
echo "Creating the Event Grid subscription of the ingest container (azd provision)..."
azd env set ENABLE_INGEST_EVENTS true
azd provision --no-prompt

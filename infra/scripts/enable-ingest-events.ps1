# azd postdeploy hook: once the function code runs, the blobs extension can answer Event Grid's
# webhook validation, so provision again with the ingest subscription switched on. Runs once per
# environment; later deployments find it on and do nothing.
$ErrorActionPreference = 'Stop'
$enabled = azd env get-value ENABLE_INGEST_EVENTS 2>$null
if ($enabled -eq 'true') { exit 0 }
Write-Host 'Creating the Event Grid subscription of the ingest container (azd provision)...'
azd env set ENABLE_INGEST_EVENTS true
azd provision --no-prompt
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

# The Container Apps environment with a serverless GPU workload profile, and the trainer job:
# KEDA's azure-queue scaler starts one execution per message on `training-requests` (a training
# or an export); each runs `python -m trainer_job`, handles one message and exits. Declared with
# azapi, with the same ARM body as infra/modules/containerapps.bicep, so that the KEDA rule can
# authenticate as the managed identity (no connection-string secret).

locals {
  gpu_sizes = {
    "Consumption-GPU-NC8as-T4"  = { cpu = 8, memory = "56Gi" }
    "Consumption-GPU-NC24-A100" = { cpu = 24, memory = "220Gi" }
  }
  gpu_profile_name = "gpu"
}

resource "azapi_resource" "environment" {
  type      = "Microsoft.App/managedEnvironments@2025-01-01"
  name      = local.names.environment
  location  = var.location
  parent_id = data.azurerm_resource_group.main.id
  tags      = local.tags
  body = {
    properties = {
      # Logs go to Log Analytics through the diagnostic setting below (no workspace shared key).
      appLogsConfiguration = {
        destination = "azure-monitor"
      }
      workloadProfiles = [
        { name = "Consumption", workloadProfileType = "Consumption" },
        { name = local.gpu_profile_name, workloadProfileType = var.gpu_profile_type },
      ]
    }
  }
}

resource "azurerm_monitor_diagnostic_setting" "environment" {
  name                       = "logs"
  target_resource_id         = azapi_resource.environment.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}

resource "azapi_resource" "trainer_job" {
  type      = "Microsoft.App/jobs@2025-01-01"
  name      = local.names.trainer_job
  location  = var.location
  parent_id = data.azurerm_resource_group.main.id
  tags      = merge(local.tags, { "azd-service-name" = "trainer" })

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.main.id]
  }

  body = {
    properties = {
      environmentId       = azapi_resource.environment.id
      workloadProfileName = local.gpu_profile_name
      configuration = {
        triggerType       = "Event"
        replicaTimeout    = var.trainer_replica_timeout_seconds
        replicaRetryLimit = var.trainer_replica_retry_limit
        eventTriggerConfig = {
          parallelism            = var.trainer_parallelism
          replicaCompletionCount = var.trainer_parallelism
          scale = {
            minExecutions   = 0
            maxExecutions   = var.trainer_max_executions
            pollingInterval = var.trainer_polling_interval_seconds
            rules = [
              {
                name = "training-requests"
                type = "azure-queue"
                # One execution per queued message; the scaler reads the queue as the identity.
                metadata = {
                  accountName = azurerm_storage_account.main.name
                  queueName   = local.training_queue_name
                  queueLength = "1"
                }
                identity = azurerm_user_assigned_identity.main.id
              },
            ]
          }
        }
        registries = [
          {
            server   = azurerm_container_registry.main.login_server
            identity = azurerm_user_assigned_identity.main.id
          },
        ]
      }
      template = {
        containers = [
          {
            name    = "trainer"
            image   = var.trainer_image
            command = ["python", "-m", "trainer_job"]
            resources = {
              cpu    = local.gpu_sizes[var.gpu_profile_type].cpu
              memory = local.gpu_sizes[var.gpu_profile_type].memory
            }
            env = [
              { name = "CV_STORAGE_ACCOUNT_NAME", value = azurerm_storage_account.main.name },
              { name = "AZURE_CLIENT_ID", value = azurerm_user_assigned_identity.main.client_id },
            ]
          },
        ]
      }
    }
  }

  # The job pulls from the registry and reads the queue as the identity.
  depends_on = [
    azurerm_role_assignment.identity_storage,
    azurerm_role_assignment.identity_pull,
    azurerm_storage_queue.app,
  ]
}

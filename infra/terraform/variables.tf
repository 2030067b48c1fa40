variable "subscription_id" {
  description = "Subscription to deploy into."
  type        = string
}

variable "resource_group_name" {
  description = "Existing resource group to deploy into."
  type        = string
}

variable "environment_name" {
  description = "Name of the environment; part of every generated name."
  type        = string
}

variable "location" {
  description = "Region of every resource; pick one with serverless GPUs for Container Apps."
  type        = string
}

variable "gpu_profile_type" {
  description = "Serverless GPU workload profile of the trainer job."
  type        = string
  default     = "Consumption-GPU-NC8as-T4"
  validation {
    condition     = contains(["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"], var.gpu_profile_type)
    error_message = "Use Consumption-GPU-NC8as-T4 or Consumption-GPU-NC24-A100."
  }
}

variable "training_key" {
  description = "Value of the Training-Key header (CV_TRAINING_KEY), stored in Key Vault."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.training_key) >= 8
    error_message = "At least 8 characters."
  }
}

variable "prediction_key" {
  description = "Value of the Prediction-Key header (CV_PREDICTION_KEY), stored in Key Vault."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.prediction_key) >= 8
    error_message = "At least 8 characters."
  }
}

variable "trainer_image" {
  description = "The trainer image; the placeholder until you push the real one."
  type        = string
  default     = "mcr.microsoft.com/k8se/quickstart-jobs:latest"
}

variable "enable_ingest_events" {
  description = "Create the Event Grid subscription to the ingest_blob trigger. Needs the function code deployed first: Event Grid validates the webhook, and the blobs extension answers only once the code runs."
  type        = bool
  default     = false
}

variable "trainer_max_executions" {
  description = "Most trainings (job executions) running at once; each takes one GPU of your quota."
  type        = number
  default     = 4
}

variable "trainer_parallelism" {
  description = "Replicas per execution; each takes one queued message."
  type        = number
  default     = 1
}

variable "trainer_replica_timeout_seconds" {
  description = "Seconds one training may run (Advanced trainings stop within reservedBudgetInHours, default 1 hour)."
  type        = number
  default     = 7200
}

variable "trainer_replica_retry_limit" {
  description = "Restarts of a failed replica within one execution; the queue redelivers as well."
  type        = number
  default     = 1
}

variable "trainer_polling_interval_seconds" {
  description = "Seconds between KEDA looks at the training queue."
  type        = number
  default     = 30
}

variable "function_maximum_instance_count" {
  description = "Most function app instances."
  type        = number
  default     = 100
}

variable "function_instance_memory_mb" {
  description = "Memory of one function app instance, MB (512, 2048 or 4096)."
  type        = number
  default     = 2048
}

variable "storage_replication_type" {
  description = "Replication of the storage account (LRS, ZRS, GRS, GZRS)."
  type        = string
  default     = "LRS"
}

variable "names" {
  description = "Name overrides (keys as in local.generated_names); missing keys are generated."
  type        = map(string)
  default     = {}
}

# Providers: azurerm for everything it expresses; azapi for the Container Apps environment and the
# trainer job, whose serverless GPU profile and managed-identity KEDA rule are declared with the
# same ARM body as infra/modules/containerapps.bicep.
terraform {
  required_version = ">= 1.9.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.40"
    }
    azapi = {
      source  = "Azure/azapi"
      version = "~> 2.5"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
  # The account refuses shared keys, so the provider's data-plane calls use Entra ID too.
  storage_use_azuread = true
}

provider "azapi" {}

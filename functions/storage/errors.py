"""The storage failures callers outside storage may catch (the API answers them with 503 or
500): the SDK's exception types, named here so that only storage imports the SDKs."""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

__all__ = ["HttpResponseError", "ServiceRequestError", "ServiceResponseError"]

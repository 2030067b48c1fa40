"""Every operation of the official SDK's clients (azure-cognitiveservices-vision-customvision
3.1.1, training and prediction) has a route: walked from the SDK's own operation metadata
(its URL template and the HTTP verb its code sends) and checked against /openapi.json."""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import httpx
from azure.cognitiveservices.vision.customvision.prediction.operations import (
    _custom_vision_prediction_client_operations as prediction_operations,
)
from azure.cognitiveservices.vision.customvision.training.operations import (
    _custom_vision_training_client_operations as training_operations,
)

SDK_PREFIXES = {
    training_operations: "/customvision/v3.4-preview/training",
    prediction_operations: "/customvision/v3.1/prediction",
}
VERB = re.compile(r"self\._client\.(get|post|put|patch|delete)\(")


def _template(path: str) -> str:
    """A path with its parameters' names left out, lower case (routes match ignoring case)."""
    return re.sub(r"\{[^}]*\}", "{}", path).lower()


def sdk_operations(module: ModuleType) -> list[tuple[str, str, str]]:
    """(operation name, verb, path) of every operation of the module's client."""
    (mixin,) = [c for n, c in inspect.getmembers(module, inspect.isclass) if n.endswith("Mixin")]
    found = []
    for name, function in inspect.getmembers(mixin, inspect.isfunction):
        metadata = getattr(function, "metadata", None)
        if not metadata:
            continue
        verb = VERB.search(inspect.getsource(function))
        assert verb, name
        found.append((name, verb.group(1), SDK_PREFIXES[module] + metadata["url"]))
    return found


def test_every_sdk_operation_has_a_route(endpoint: str) -> None:
    document = httpx.get(endpoint + "/openapi.json", timeout=30).json()
    routes = {(verb, _template(path)) for path, item in document["paths"].items() for verb in item}
    operations = [op for module in SDK_PREFIXES for op in sdk_operations(module)]
    assert len(operations) >= 60  # the walk found the SDK's operations
    missing = [
        f"{name}: {verb.upper()} {path}"
        for name, verb, path in operations
        if (verb, _template(path)) not in routes
    ]
    assert missing == []

"""schemathesis over /openapi.json with both keys: no 5xx, and no answer that contradicts the
document (status codes, content types and bodies as documented). Bounded to a few minutes:
a few derandomised examples per operation. (schemathesis' pytest plugin does not run under
pytest 9, so the operations are driven here with hypothesis directly.)

Random ids only ever reach the 404 paths, so half the cases get the ids of a project this test
made for itself (one tag, one tagged image): the fuzzed bodies and parameters then meet real
rows. That project has too few images to train, so POST .../train never queues a training."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PREDICTION_KEY, TRAINING_KEY, TRAINING_PREFIX, jpeg_bytes

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# One version of each API is enough: the other prefixes serve the same routers. POST .../train
# stays in: it meets only generated ids and the fuzzer's own project (see above).
OPERATIONS = r"^/(customvision/v3\.3/training|customvision/v3\.1/prediction|blobs)/"
EXAMPLES = 40


def own_project(endpoint: str) -> dict[str, str]:
    """A project of the fuzzer's own, with a tag and a tagged image: the ids to substitute."""
    headers = {"Training-Key": TRAINING_KEY}
    with httpx.Client(base_url=endpoint + TRAINING_PREFIX, headers=headers, timeout=60) as http:
        project_id = http.post("/projects", params={"name": f"fuzz-{uuid.uuid4().hex}"}).json()[
            "id"
        ]
        tag_id = http.post(f"/projects/{project_id}/tags", params={"name": "fuzzed"}).json()["id"]
        uploaded = http.post(
            f"/projects/{project_id}/images",
            params={"tagIds": tag_id},
            content=jpeg_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 200, uploaded.text
        image_id = uploaded.json()["images"][0]["image"]["id"]
    return {"projectId": project_id, "tagId": tag_id, "imageId": image_id}


@pytest.fixture()
def cleanup(endpoint: str) -> Iterator[None]:
    """Delete the projects the fuzzing made, so later tests in this session (the portal's,
    which list every project) are not slowed by dozens of them."""
    headers = {"Training-Key": TRAINING_KEY}
    base = endpoint + "/customvision/v3.3/training"
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        before = {p["id"] for p in http.get("/projects").json()}
        yield
        for project in http.get("/projects").json():
            if project["id"] not in before:
                http.delete(f"/projects/{project['id']}")


def test_api_answers_as_documented(endpoint: str, cleanup: None) -> None:
    real_ids = own_project(endpoint)
    schema = schemathesis.openapi.from_url(endpoint + "/openapi.json")
    failures: list[str] = []
    operations = [
        result.ok() for result in schema.include(path_regex=OPERATIONS).get_all_operations()
    ]
    assert len(operations) > 50
    for operation in operations:

        @given(case=operation.as_strategy(), use_real_ids=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case, use_real_ids: bool) -> None:
            # Deleting the project or its tag would leave the other operations nothing real.
            keeps_rows = not (case.method.upper() == "DELETE" and case.path.endswith("}"))
            if use_real_ids and keeps_rows and case.path_parameters:
                for name in case.path_parameters.keys() & real_ids.keys():
                    case.path_parameters[name] = real_ids[name]
            prediction = "/prediction/" in case.path
            key = (
                {"Prediction-Key": PREDICTION_KEY} if prediction else {"Training-Key": TRAINING_KEY}
            )
            case.call_and_validate(headers=key, checks=CHECKS, timeout=30)

        try:
            call()
        except Exception as error:  # collect every operation's findings, then fail once
            failures.append(f"{operation.label}: {str(error)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_document_lists_the_real_error_answers(endpoint: str) -> None:
    document = httpx.get(endpoint + "/openapi.json").json()
    error = {"$ref": "#/components/schemas/CustomVisionError"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            expected = {"400", "503"} | ({"401"} if path.startswith("/customvision/") else set())
            expected |= {"404"} if "{" in path else set()
            assert expected <= responses.keys(), (method, path, sorted(responses))
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == error
    batch = "/customvision/v3.3/training/projects/{projectId}/images/files"
    assert "207" in document["paths"][batch]["post"]["responses"]

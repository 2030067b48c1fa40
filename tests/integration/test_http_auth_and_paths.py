"""Raw-HTTP checks of the Training-Key, case-insensitive paths and generic route errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TRAINING_KEY, TRAINING_PREFIX, assert_error


def new_project(http: httpx.Client, prefix: str) -> str:
    response = http.post("/projects", params={"name": f"{prefix}-{uuid.uuid4().hex[:10]}"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def image_count(http: httpx.Client, project_id: str) -> int:
    response = http.get(f"/projects/{project_id}/images/count")
    assert response.status_code == 200, response.text
    return int(response.json())


@pytest.fixture()
def anonymous(endpoint: str) -> Iterator[httpx.Client]:
    """A client that sends no Training-Key."""
    with httpx.Client(base_url=endpoint + TRAINING_PREFIX, timeout=60) as client:
        yield client


def test_missing_or_wrong_training_key_is_401(http: httpx.Client, anonymous: httpx.Client) -> None:
    project = new_project(http, "auth")
    wrong = {"Training-Key": TRAINING_KEY + "x"}
    prediction = {"Prediction-Key": TRAINING_KEY}
    for headers in ({}, wrong, {"Training-Key": ""}, prediction):
        for method, path in (
            ("GET", "/projects"),
            ("GET", "/domains"),
            ("GET", f"/projects/{project}"),
            ("GET", f"/projects/{project}/tags"),
            ("GET", f"/projects/{project}/images/count"),
            ("DELETE", f"/projects/{project}"),
            ("POST", "/projects?name=sneaky"),
        ):
            response = anonymous.request(method, path, headers=headers)
            assert_error(response, 401, "Unauthorized")
    # Nothing happened: the project still exists and no project "sneaky" was created.
    assert http.get(f"/projects/{project}").status_code == 200
    assert "sneaky" not in {p["name"] for p in http.get("/projects").json()}


def test_auth_is_checked_before_anything_else(anonymous: httpx.Client) -> None:
    """Unauthenticated callers learn nothing: not whether a project exists, not a parse error."""
    missing = str(uuid.uuid4())
    assert_error(anonymous.get(f"/projects/{missing}"), 401, "Unauthorized")
    assert_error(anonymous.get("/projects/not-a-guid"), 401, "Unauthorized")
    assert_error(anonymous.get(f"/projects/{missing}/images?take=9999"), 401, "Unauthorized")
    response = anonymous.patch(
        f"/projects/{missing}", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401, "Unauthorized")


def test_training_key_header_name_is_case_insensitive(
    http: httpx.Client, anonymous: httpx.Client
) -> None:
    project = new_project(http, "auth")
    for name in ("training-key", "TRAINING-KEY", "Training-key"):
        response = anonymous.get(f"/projects/{project}", headers={name: TRAINING_KEY})
        assert response.status_code == 200, (name, response.text)
        assert response.json()["id"] == project
    # The key's value is not case-insensitive.
    upper = anonymous.get("/projects", headers={"training-key": TRAINING_KEY.upper()})
    assert_error(upper, 401, "Unauthorized")


def test_paths_match_case_insensitively(http: httpx.Client, endpoint: str) -> None:
    project = new_project(http, "paths")
    headers = {"Training-Key": TRAINING_KEY}
    failures: list[tuple[str, int, str]] = []
    with httpx.Client(base_url=endpoint, headers=headers, timeout=60) as root:
        for path in (
            "/customvision/v3.4-preview/training/projects",
            "/CustomVision/V3.3/Training/Projects",
            "/CUSTOMVISION/V3.3/TRAINING/PROJECTS",
            "/customvision/v3.3/training/Projects",
            "/CustomVision/v3.4-Preview/Training/Projects",
        ):
            response = root.get(path)
            if response.status_code != 200 or project not in {p["id"] for p in response.json()}:
                failures.append((path, response.status_code, response.text[:100]))

        upper_id = f"/customvision/v3.3/training/projects/{project.upper()}"
        response = root.get(upper_id)
        if response.status_code != 200 or response.json()["id"] != project:
            failures.append((upper_id, response.status_code, response.text[:100]))

        count = f"/customvision/v3.4-preview/training/Projects/{project}/Images/Count"
        response = root.get(count)
        if response.status_code != 200 or response.json() != 0:
            failures.append((count, response.status_code, response.text[:100]))

        tags = f"/CustomVision/V3.3/Training/Projects/{project}/Tags"
        response = root.post(tags, params={"name": "MixedCase"})
        # Path case folding must not touch values: the tag name keeps its case.
        if response.status_code != 200 or response.json()["name"] != "MixedCase":
            failures.append((tags, response.status_code, response.text[:100]))
    assert failures == [], "\n".join(map(str, failures))
    assert image_count(http, project) == 0


def test_unknown_routes_and_methods_answer_code_and_message(
    http: httpx.Client, endpoint: str
) -> None:
    assert_error(http.get("/no-such-route"), 404, "NotFound")
    project = new_project(http, "routes")
    assert_error(http.get(f"/projects/{project}/nonsense"), 404, "NotFound")
    with httpx.Client(base_url=endpoint, timeout=60) as root:
        assert_error(root.get("/customvision/v9.9/training/projects"), 404, "NotFound")
        assert_error(root.get("/definitely/not/here"), 404, "NotFound")
    response = http.put("/projects")
    assert response.status_code == 405, response.text
    assert set(response.json()) == {"code", "message"}

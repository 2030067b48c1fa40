"""schemathesis over /openapi.json with both keys: no 5xx, and no answer that contradicts the
document (status codes, content types and bodies as documented). Bounded to a few minutes:
a few derandomised examples per operation. (schemathesis' pytest plugin does not run under
pytest 9, so the operations are driven here with hypothesis directly.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PREDICTION_KEY, TRAINING_KEY

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# One version of each API is enough: the other prefixes serve the same routers.
OPERATIONS = r"^/(customvision/v3\.3/training|customvision/v3\.1/prediction|blobs)/"
EXAMPLES = 40


def test_api_answers_as_documented(endpoint: str) -> None:
    schema = schemathesis.openapi.from_url(endpoint + "/openapi.json")
    failures: list[str] = []
    operations = [
        result.ok() for result in schema.include(path_regex=OPERATIONS).get_all_operations()
    ]
    assert len(operations) > 50
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
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

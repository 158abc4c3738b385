"""Schemathesis fuzzes every service from its own OpenAPI: no input may cause a 5xx.

Its strategies are driven with Hypothesis directly (its pytest plugin does not support
pytest 9 yet).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("service", ["users", "catalog", "orders", "delivery"])
def test_no_input_makes_a_service_fail(stack, service):
    base_url = stack.servers[service].url
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json").exclude(path_regex="^/internal/")
    headers = stack.customer().headers
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4

    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error], timeout=30)

        call()

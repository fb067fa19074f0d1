"""Contract test (T24) for the push, inbox and admin-jobs operations: Schemathesis with every check
on, through the same app, accounts, bearer check and per-operation run as
tests/test_openapi_schemathesis.py (whose filter covers auth, users/me and admin users)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_openapi_schemathesis as contract
from tests.support import API
from tests.test_openapi_schemathesis import api_schema  # noqa: F401 - the fixture

OPERATIONS = [
    ("POST", f"{API}/push/tokens"), ("GET", f"{API}/push/tokens"),
    ("DELETE", f"{API}/push/tokens/{{token_id}}"), ("GET", f"{API}/push/preferences"),
    ("PUT", f"{API}/push/preferences"), ("GET", f"{API}/notifications"),
    ("POST", f"{API}/notifications/read-all"),
    ("POST", f"{API}/notifications/{{notification_id}}/read"),
    ("GET", f"{API}/admin/jobs"), ("POST", f"{API}/admin/jobs/{{job_id}}/retry"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(api_schema: Any, method: str,  # noqa: F811
                                            path: str) -> None:
    contract.test_operation_conforms_to_the_document(api_schema, method, path)

"""Contract test (T24) for the firmware and rollout operations of the admin API and the Device
API's update check and status report: Schemathesis with every check on, through the same app,
accounts, bearer check and per-operation run as tests/test_openapi_schemathesis.py (admin paths
get the admin's token, device paths a provisioned appliance's)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_openapi_schemathesis as contract
from tests.support import API
from tests.test_openapi_schemathesis import api_schema  # noqa: F401 - the fixture

OPERATIONS = [
    ("POST", f"{API}/admin/firmware"), ("GET", f"{API}/admin/firmware"),
    ("GET", f"{API}/admin/firmware/{{release_id}}"),
    ("PATCH", f"{API}/admin/firmware/{{release_id}}"),
    ("POST", f"{API}/admin/rollouts"), ("GET", f"{API}/admin/rollouts"),
    ("GET", f"{API}/admin/rollouts/{{rollout_id}}"),
    ("POST", f"{API}/admin/rollouts/{{rollout_id}}/{{action}}"),
    ("GET", f"{API}/device/firmware/check"), ("POST", f"{API}/device/firmware/status"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(api_schema: Any, method: str,  # noqa: F811
                                            path: str) -> None:
    contract.test_operation_conforms_to_the_document(api_schema, method, path)

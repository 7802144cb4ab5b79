"""schemathesis: requests generated from the published OpenAPI document, against every operation.
Whatever it sends, no 5xx, and every JSON rejection names a field and a reason."""

from __future__ import annotations

import schemathesis
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from services import runtime
from services.messaging.kafka import InMemoryPublisher
from services.platform.settings import Settings

APP = runtime.build_http_app(Settings(schema_registry_url="memory://", link_signing_key=SecretStr("k")),
                             publisher=InMemoryPublisher(), follow_topics=False)
AGENCY = {"Authorization": "Bearer local-dev-token-apd"}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, headers=AGENCY)


def credentials_for(path: str, method: str) -> dict[str, str]:
    """The caller each operation is for: a police agency, program staff, or a district coordinator."""
    if path in ("/v1/referrals", "/v1/child-encounters") and method == "POST":
        return AGENCY
    if path.startswith(("/v1/districts", "/v1/triage")):
        return {"Authorization": "Bearer local-dev-token-coord-abq"}
    if path.startswith(("/v1/referrals", "/v1/sites")):
        return {"Authorization": "Bearer local-dev-token-pm-abq"}
    return {}  # signed links and the SMS provider's signed webhook carry their own credential


@schemathesis.check
def rejections_name_field_and_reason(ctx, response, case) -> None:
    media = response.headers.get("content-type", [""])[0]
    if 400 <= response.status_code < 500 and media.startswith("application/fhir+json"):  # the FHIR API's words
        outcome = OperationOutcome.model_validate(response.json())
        assert all(issue.diagnostics and issue.expression for issue in outcome.issue), f"bare outcome: {outcome}"
    elif 400 <= response.status_code < 500 and "json" in media:
        errors = response.json().get("errors")
        assert errors, f"{response.status_code} without an errors list"
        for error in errors:
            assert error.get("field") and error.get("reason"), f"rejection without field and reason: {error}"


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_rejection_explains_itself(case) -> None:
    case.call_and_validate(headers=credentials_for(case.path, case.method.upper()),
                           checks=[schemathesis.checks.not_a_server_error, rejections_name_field_and_reason])

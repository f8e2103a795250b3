"""Schemathesis against the OpenAPI schema of the real app: generated requests, valid and invalid, to every
operation, with a valid bearer token of a registered organisation (a centre; an auditor for the auditors'
endpoints; the admin scope for the settings) so that the requests reach the handlers, and without a token. Every
answer must be no server error, with a status code, content type, headers and body that the operation declares.

The app is the one ``tsunagu serve`` runs (``create_app``) on a hub with a SQLite file store, its organisations
registered and a few events and a case loaded (one per test worker). Generation is derandomised (the same
requests on every run, in CI too) and bounded per operation, so that the file takes well under a minute and a
half on two cores.

The schema is read from the app's own ``openapi()`` when the module is collected, so that schemathesis makes one
test per operation (spread over the xdist workers); ``schemathesis.pytest.from_fixture`` would be the other way,
but it does not run under pytest 9.2 (it sets ``Function._nodeid``, which pytest 9.2 no longer has).
"""

from __future__ import annotations

from datetime import datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from joserfc.jwk import ECKey

from events.clock import JST
from services.auth.tokens import TokenVerifier, keys_from_file
from services.casework.commands import Actor, CaseWork
from services.http.app import create_app
from services.hub import Hub, SettableClock

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "code": "E144202000011"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44"},
]
EVENTS = [
    {
        "id": "r1",
        "kind": "child.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-04-01T09:00:00+09:00",
        "payload": {"residence": "442020", "name_kana": "ベップ ハナコ"},
    },
    {
        "id": "e1",
        "kind": "concern.reported",
        "child": "c1",
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": "2026-05-12T10:00:00+09:00",
        "payload": {"summary": "=連絡なしの欠席が続いている"},
    },
]
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=JST)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]
FUZZ = settings(
    max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _openapi_document() -> dict:
    """The app's OpenAPI document. It depends on the routes only, so no hub is given: opening a store when the
    module is collected would fix the process's stream secret (``events.sealing``) before the tests set theirs."""
    verifier = TokenVerifier([ECKey.generate_key("P-256", private=True)])
    return create_app(None, verifier).openapi()  # type: ignore[arg-type]


schema = schemathesis.openapi.from_dict(_openapi_document())


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, keys_file):
    """The real app on a hub with data (one per test worker), the rate limits raised so that every generated
    request is served."""
    directory = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TSUNAGU_KEYS_FILE", str(keys_file))  # the session's keys (tests/conftest.py)
        env.setenv("TSUNAGU_RATE_LIMIT", "1000000/minute")
        env.setenv("TSUNAGU_TOKEN_RATE_LIMIT", "1000000/minute")
        hub = Hub(f"sqlite:///{directory / 'hub.db'}", clock=SettableClock(NOW))
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish(EVENTS)} == {"accepted"}
        CaseWork(hub).register(Actor("beppu-center"), child="c1", category="youshien", case_type="neglect", case="K1")
        issuer, verifier = keys_from_file(directory / "signing-key.pem")
        app = create_app(hub, verifier, issuer=issuer)
    app.state.tokens = {
        "centre": issuer.issue(org="beppu-center", role="caseworker", user="fuzzer"),
        "auditor": issuer.issue(org="oita-audit", role="auditor", user="fuzzer"),
        "admin": issuer.issue(org="beppu-center", role="caseworker", user="fuzzer", scopes=["admin"]),
    }
    yield app
    hub.close()


@schema.parametrize()
@FUZZ
def test_with_a_valid_token_no_answer_is_a_server_error_or_off_the_schema(case, fuzzed_app):
    caller = (
        "auditor"
        if case.operation.path.startswith("/v1/audit/")
        else "admin"
        if case.operation.path.startswith("/v1/settings")
        else "centre"
    )
    case.call_and_validate(
        app=fuzzed_app, headers={"Authorization": f"Bearer {fuzzed_app.state.tokens[caller]}"}, checks=CHECKS
    )


@schema.parametrize()
@FUZZ
def test_without_a_token_no_answer_is_a_server_error_or_off_the_schema(case, fuzzed_app):
    case.call_and_validate(app=fuzzed_app, checks=CHECKS)

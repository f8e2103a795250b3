"""``GET /v1/aggregates`` (issue 17 §3): a prefecture office reads its prefecture with small cells hidden, per
municipality or per 圏域; a centre its own whole; a school and an auditor are refused (403) and recorded; 422
names the field of a bad query; OpenAPI has the response model."""

from __future__ import annotations

from datetime import datetime

import pytest

from events.clock import JST
from services.administration.regions import load_regions
from services.aggregates.access_log import records
from tests.helpers import assert_error, registered_cases, token_header

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "cC", "type": "municipal_center", "municipality": "100003", "prefecture": "10"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
    {"id": "au", "type": "auditor", "prefecture": "10"},
]
REGIONS = [
    {"code": "10", "name": "架空県", "regions": [
        {"name": "東部圏域", "municipalities": {"100001": "甲市", "100002": "乙町"}},
        {"name": "西部圏域", "municipalities": {"100003": "丙村"}},
    ]},
]  # fmt: skip


@pytest.fixture
def world(hub, clock):
    hub.load_orgs(ORGS)
    load_regions(hub.store, REGIONS)
    clock.at = datetime(2026, 12, 1, 9, tzinfo=JST)
    items = registered_cases([("cA", "100001", 2), ("cB", "100002", 7), ("cC", "100003", 6)])
    assert {r.outcome for r in hub.publish(items)} == {"accepted"}
    return hub


def get(client, issuer, org, role="clerk", **params):
    query = {"measure": "cases.registered", "from": "2026-05", "to": "2026-06", **params}
    return client.get("/v1/aggregates", params=query, headers=token_header(issuer, org, role))


def test_a_prefecture_office_reads_every_municipality_with_small_cells_hidden(client, issuer, world):
    response = get(client, issuer, "pf")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["months"] == ["2026-05", "2026-06"] and body["own"] is None
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["100001"]["name"] == "甲市" and rows["100001"]["labels"][0] == "<5"
    assert rows["100001"]["cells"][0] is None
    assert rows["100002"]["labels"] == ["7", "0", "7"] and rows["計"]["labels"] == ["15", "0", "15"]
    shown = [c for r in body["rows"] for c in r["cells"] if c is not None]
    assert not any(0 < c < 5 for c in shown)
    assert "cA-0" not in response.text and "K-cA-0" not in response.text
    [record] = records(world.store)
    assert record["id"] == body["access_record"] and record["org"] == "pf"


def test_by_region_sums_each_region_and_the_prefecture(client, issuer, world):
    world.publish(
        [
            {
                "id": f"k-more-{i}",
                "kind": "case.registered",
                "child": "cA-0",
                "source": "cA",
                "basis": "internal",
                "at": "2026-05-03T09:00:00+09:00",
                "payload": {"case": f"K-more-{i}", "category": "youshien", "case_type": "upbringing"},
            }
            for i in range(3)
        ]
    )  # fmt: skip  (甲市 now 5: nothing hidden)
    body = get(client, issuer, "pf", by="region").json()
    assert [(r["key"], r["labels"]) for r in body["rows"]] == [
        ("東部圏域", ["12", "0", "12"]),
        ("西部圏域", ["6", "0", "6"]),
        ("計", ["18", "0", "18"]),
    ]


def test_region_sums_are_suppressed_too(client, issuer, world):
    body = get(client, issuer, "pf", by="region", measure="cases.registered", **{"from": "2026-06"}).json()
    assert body["rows"][0]["labels"] == ["0", "0"]
    world.publish(
        [{"id": "k-x", "kind": "case.registered", "child": "cC-0", "source": "cC", "basis": "internal",
          "at": "2026-06-02T09:00:00+09:00", "payload": {"case": "K-x", "category": "youshien",
                                                        "case_type": "upbringing"}}]
    )  # fmt: skip
    body = get(client, issuer, "pf", by="region", **{"from": "2026-06"}).json()
    west = next(r for r in body["rows"] if r["key"] == "西部圏域")
    assert west["cells"] == [None, None] and west["labels"][0] == "<5"


def test_a_centre_sees_its_own_small_counts(client, issuer, world):
    body = get(client, issuer, "cA", role="caseworker").json()
    rows = {r["key"]: r for r in body["rows"]}
    assert body["own"] == "100001" and rows["100001"]["labels"] == ["2", "0", "2"]


@pytest.mark.parametrize(("org", "role"), [("s1", "teacher"), ("au", "auditor")])
def test_a_school_and_an_auditor_are_refused_and_recorded(client, issuer, world, org, role):
    assert_error(get(client, issuer, org, role), 403, "aggregates_refused")
    [record] = records(world.store)
    assert record["org"] == org and record["refused"] and record["cells"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"measure": "children.names"}, "measure"),
        ({"from": "2026-13"}, "from"),
        ({"to": "2026-04"}, "to"),
        ({"by": "school"}, "by"),
    ],
)
def test_a_bad_query_is_422_naming_the_field(client, issuer, world, params, field):
    error = assert_error(get(client, issuer, "pf", **params), 422, "invalid_request")
    assert error["field"] == field


def test_openapi_has_the_response_model(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/aggregates"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("AggregatesOut")
    assert {"403", "422"} <= set(operation["responses"])


def test_a_region_sum_never_gives_back_a_municipality_hidden_in_the_same_query(client, issuer, world):
    """西部圏域 holds 丙村 only; 東部圏域 甲市 (2, hidden) and 乙町 (7): its sum 9 minus 7 would give 2 back."""
    body = get(client, issuer, "pf", by="region").json()
    east = next(r for r in body["rows"] if r["key"] == "東部圏域")
    assert east["cells"][0] is None and east["cells"][-1] is None and east["labels"][0] == "秘匿"
    shown = {r["key"]: r for r in get(client, issuer, "pf").json()["rows"]}
    assert shown["100002"]["labels"][0] == "7" and shown["100001"]["cells"][0] is None


def test_a_levels_row_total_is_its_last_month_end_and_a_flows_the_sum(client, issuer, world):
    """Open cases at month end are not added up over the months: the row total is the period's last month-end."""
    body = get(client, issuer, "pf", measure="cases.open", **{"from": "2026-05", "to": "2026-07"}).json()
    assert body["total"] == "last"
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["100002"]["labels"] == ["7", "7", "7", "7"]  # not 21
    assert rows["計"]["cells"][-1] == rows["計"]["cells"][-2]
    assert get(client, issuer, "pf").json()["total"] == "sum"


def test_the_median_days_between_reviews_over_the_api(client, issuer, world):
    """No review yet: every median is '－' (none), nothing hidden, never summed."""
    body = get(client, issuer, "pf", measure="reviews.median_days").json()
    assert body["total"] == "median"
    assert all(r["labels"] == ["－", "－", "－"] and r["cells"] == [None, None, None] for r in body["rows"])

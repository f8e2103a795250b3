"""The suite refuses to run when a test does not say what it needs: a test that uses the PostgreSQL or Kafka
fixtures without the server's marker, or one that carries none of the markers of ``pyproject.toml``
(``tests/conftest.py``, ``marking_problems``). Checked by running pytest on a small suite of its own."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit

SUITE = """
import pytest

def test_postgres_unmarked(postgres_url):
    pass

@pytest.mark.postgres
def test_postgres_marked(postgres_url):
    pass

@pytest.mark.store
def test_kafka_unmarked(kafka_server):
    pass

def test_nothing_said():
    pass

@pytest.mark.unit
def test_pure():
    pass
"""


def test_a_test_using_a_server_fixture_without_its_marker_stops_the_suite(pytester):
    pytester.makeconftest(
        "from tests.conftest import kafka_server, postgres_server, postgres_url, pytest_collection_modifyitems\n"
    )
    pytester.makepyfile(test_inner=SUITE)
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    said = result.stderr.str()
    assert "test_postgres_unmarked uses the fixture postgres_url but is not marked @pytest.mark.postgres" in said
    assert "test_kafka_unmarked uses the fixture kafka_server but is not marked @pytest.mark.kafka" in said
    assert "test_nothing_said carries none of the markers unit, store, postgres, kafka, http, browser" in said
    assert "test_postgres_marked" not in said and "test_pure" not in said

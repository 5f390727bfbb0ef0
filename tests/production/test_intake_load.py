"""Intake under load, smaller than ``python -m bench.intake_load``: 40 public and 40 API submissions (every
fourth API key twice at once) plus 4 over the public rate limit, all at the same instant, against the real
``qifu serve`` with two gunicorn workers. Only correctness is asserted — no answer but 303/429/201/200, exactly
the over-limit submissions refused, one case per accepted submission and per idempotency key, no 5xx in the
server's log; the timings are printed."""

from __future__ import annotations

import pytest

from bench.intake_load import print_report, run


@pytest.mark.req("FH-2")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_burst_of_public_and_api_submissions_makes_each_case_once(backend, request):
    admin = request.getfixturevalue("pg_admin_url") if backend == "postgresql" else None
    report = run(public=40, api=40, over_limit=4, duplicate_every=4, workers=2, threads=4, pg_admin_url=admin,
                 say=lambda line: None)
    print_report(report)
    assert report.problems == []
    statuses = sorted((o.kind, o.status) for o in report.outcomes)
    assert statuses.count(("public", 303)) == 40 and statuses.count(("public", 429)) == 4
    assert statuses.count(("api", 201)) == 40 and statuses.count(("api", 200)) == 10

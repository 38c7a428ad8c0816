"""No count of people in a group below the policy's ``min_group_size`` is shown or published:
the monitoring API (funnel, estimates, drift, realised results), the monitoring page, the
review-request summary (API and page) and the transparency record, on a real release whose
groups are small (the test site has a few hundred people a month)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from audits import disclosure
from monitoring.funnel import funnel
from monitoring.labels import LabelColumns, ingest
from service import create_app
from store.accounts import add_user
from store.db import EntryGroup, ReviewRequest, ReviewRequestEvent, default_url
from tests.support.homes import Released, copy_released, labels_for

PASSWORD = "small-cells-password"
#: A count of people (or areas) in a message's words.
WORDS = re.compile(r"\b(\d[\d,]*)(?: people| areas| in need| in the reference| in the period)\b")
#: Fields that hold a count of people (of a group, in a group's row).
COUNTS = (
    "people",
    "selected",
    "offered",
    "lottery",
    "contacted",
    "accepted",
    "declined",
    "unreachable",
    "no_outcome",
    "labelled",
    "crises",
    "n",
    "positives",
    "people_in_need",
    "observed",
    "n_period",
    "n_reference",
    "count",
    "rows",
)


@pytest.fixture(scope="module")
def site(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Released:
    """A copy of the released site with its latest month labelled and review requests filed
    from two groups (6 and 2)."""
    mine = copy_released(released, tmp_path_factory.mktemp("small-cells"))
    from lifecycle.catalogue import read_report
    from model.registry import connect

    registry = connect(mine.home)
    period = mine.periods[-1]
    ingest(
        mine.db,
        name=mine.name,
        frame=labels_for(mine, period),
        columns=LabelColumns("person_id", "period", "crisis_6m"),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=mine.home.monitoring,
        by="analyst",
    )
    with mine.db.session() as session:
        groups = session.execute(
            select(EntryGroup.attribute, EntryGroup.group_name, func.min(EntryGroup.entry_id))
            .group_by(EntryGroup.attribute, EntryGroup.group_name)
            .order_by(EntryGroup.attribute, EntryGroup.group_name)
        ).all()
        first = groups[0][0]
        entries = [entry for attribute, _, entry in groups if attribute == first][:2]
        at = datetime(2026, 2, 15, 12, tzinfo=UTC)
        for entry in [entries[0]] * 6 + [entries[1]] * 2:
            row = ReviewRequest(
                person_id="small-cells",
                model_name=mine.name,
                period=period,
                entry_id=entry,
                kind="wrong_data",
                raised_by="person",
                details="",
                state="open",
                filed_by="test",
                created_at=at,
                updated_at=at,
            )
            session.add(row)
            session.flush()
            session.add(ReviewRequestEvent(request_id=row.id, state="open", note="", by="t", at=at))
    return mine


@pytest.fixture(scope="module")
def app(site: Released) -> Flask:
    return create_app(
        {
            "HOME": site.home,
            "DATABASE_URL": default_url(site.home.root),
            "WATCH_SECONDS": 0,
            "TESTING": True,
            "MODEL_NAME": site.name,
        }
    )


@pytest.fixture(scope="module")
def threshold(app: Flask) -> int:
    found = app.extensions["outreach.model"].disclosure_threshold()
    assert found == 100  # the shipped policy's min_group_size
    return int(found)


@pytest.fixture(scope="module")
def token(app: Flask) -> str:
    return add_user(
        app.extensions["outreach.db"], "small-cells-oversight", "oversight", password=PASSWORD
    )


def _client(app: Flask) -> FlaskClient:
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf
    signed = client.post(
        "/login",
        data={
            "csrf_token": csrf.group(1),
            "username": "small-cells-oversight",
            "password": PASSWORD,
        },
    )
    assert signed.status_code == 302
    return client


def group_counts(document: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every value under a count field of a group's row (a mapping with a ``group`` that is not
    everyone) anywhere in ``document``: what must be withheld when small."""
    found: list[tuple[str, Any]] = []
    if isinstance(document, dict):
        group = document.get("group")
        if group is not None and group != "overall" and document.get("attribute") != "overall":
            found += disclosure.shown_counts(
                {k: v for k, v in document.items() if k in COUNTS}, COUNTS, path
            )
        for key, value in document.items():
            if key != disclosure.WITHHELD and isinstance(value, dict | list):
                found += group_counts(value, f"{path}.{key}")
    elif isinstance(document, list):
        for i, item in enumerate(document):
            found += group_counts(item, f"{path}[{i}]")
    return found


def _small(found: list[tuple[str, Any]], threshold: int) -> list[tuple[str, Any]]:
    return [(p, v) for p, v in found if disclosure.small(v, threshold)]


def test_the_site_has_small_cells_to_withhold(site: Released) -> None:
    """The reproduction: without the rule the funnel shows groups of fewer than 100."""
    with site.db.session() as session:
        raw = funnel(session, site.name, site.periods[-1], level=0.95, limit=0.8, threshold=1)
    assert _small(group_counts(raw["attributes"]), 100)


def test_the_monitoring_api_shows_no_small_count(
    app: Flask, token: str, site: Released, threshold: int
) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    withheld = scrubbed = 0
    for period in site.periods:
        document = client.get(f"/api/v1/monitoring?period={period}", headers=headers).get_json()
        assert document["disclosure"]["threshold"] == threshold
        found = group_counts(document)
        assert found, "no group counts to check"
        assert _small(found, threshold) == []
        for attribute in document["funnel"]["attributes"]:
            for row in attribute["groups"]:
                parts = [row[s] for s in document["funnel"]["statuses"]]
                # A shown total never stands beside a single withheld part.
                if row["offered"] is not None:
                    assert sum(p is None for p in parts) != 1, row
                if row["offered"] is None:
                    assert row["comparisons"]["reached"]["ratio"] is None
                    assert row["comparisons"]["reached"]["ci"] == [None, None]
                    assert row[disclosure.WITHHELD]["offered"] == disclosure.words(threshold)
                withheld += sum(v is None for v in parts)
        for row in document["estimates"]["groups"]:
            if row["attribute"] != "overall" and row["people"] is None:
                assert row["recall_expected"] is None and row["precision_low"] is None
        realised = document["realised"]
        if realised:
            assert realised["groups"] and realised["calibration"]["groups"]
        # Nor in words: the gate's and drift's messages name group sizes.
        for found in WORDS.finditer(json.dumps(document, ensure_ascii=False)):
            assert not disclosure.small(int(found[1].replace(",", "")), threshold), found[0]
        scrubbed += json.dumps(document).count(f"fewer than {threshold} in the period")
    assert withheld  # small groups were there, and were withheld
    assert scrubbed  # drift's notes on small groups, with their sizes taken out


def test_the_monitoring_page_shows_no_small_count(
    app: Flask, token: str, site: Released, threshold: int
) -> None:
    client = _client(app)
    for period in site.periods:
        html = client.get(f"/oversight/monitoring?period={period}").get_data(as_text=True)
        assert "withheld" in html
        counted = 0
        for table in re.findall(r"<table[^>]*>.*?</table>", html, flags=re.S):
            head = re.findall(r'<th scope="col">(.*?)</th>', table)
            columns = [
                i
                for i, name in enumerate(head[1:])
                if name
                in {
                    "People",
                    "On the list",
                    "Offered",
                    "By lottery",
                    "Observed",
                    "Contacted",
                    "Accepted",
                    "Declined",
                    "Unreachable",
                    "No outcome",
                }
            ]
            for row in re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", table, flags=re.S):
                if row.startswith("Everyone"):
                    continue
                cells = re.findall(r'<td class="num">(.*?)</td>', row, flags=re.S)
                for i in columns:
                    if i >= len(cells) or "withheld" in cells[i]:
                        continue
                    value = int(cells[i].replace(",", ""))
                    counted += 1
                    assert value == 0 or value >= threshold, (period, head[i + 1], cells[i])
        assert counted or "withheld" in html


def test_the_review_summary_shows_no_small_count(app: Flask, token: str, threshold: int) -> None:
    client = app.test_client()
    summary = client.get(
        "/api/v1/review-requests/summary", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    assert summary["threshold"] == threshold
    cells = [c for a in summary["attributes"] for r in a["rows"] for c in r["counts"]]
    assert any(c["withheld"] for c in cells)  # the 6 and the 2 filed above
    assert all(c["count"] is None or c["count"] == 0 or c["count"] >= threshold for c in cells)
    html = _client(app).get("/oversight/reviews").get_data(as_text=True)
    assert f"fewer than {threshold} requests are withheld" in html
    start = html.find("<caption>Requests by ")
    assert start > 0
    for table in re.findall(r"<caption>Requests by .*?</table>", html[start:], flags=re.S):
        for value in re.findall(r'<td class="num">(\d[\d,]*)</td>', table):
            number = int(value.replace(",", ""))
            assert number == 0 or number >= threshold


def test_the_transparency_record_publishes_no_small_count(
    app: Flask, token: str, site: Released, threshold: int
) -> None:
    client = _client(app)
    version = app.extensions["outreach.model"].current.version
    record = client.get(f"/oversight/transparency/{site.name}/{version}/transparency.json")
    assert record.status_code == 200, record.get_data(as_text=True)
    groups = record.get_json()["datasheet"]["groups"]
    assert groups
    for row in groups:
        if isinstance(row["rows"], str):
            assert row["rows"] == f"not published ({disclosure.words(threshold)})"
            assert row["label_rate"] == row["rows"]
        else:
            assert row["rows"] >= threshold
    assert any(isinstance(row["rows"], str) for row in groups)


def test_about_this_score_shows_no_small_group_size(app: Flask, token: str, threshold: int) -> None:
    html = _client(app).get("/outreach/about").get_data(as_text=True)
    tables = re.findall(r'<table class="accuracy-groups">.*?</table>', html, flags=re.S)
    assert tables
    for table in tables:
        sizes = re.findall(r'<th scope="row">[^<]*</th><td class="num">([^<]*)</td>', table)
        assert sizes
        hidden = [s for s in sizes if s == "withheld"]
        # Never one group's size alone: the others and the audit's total would give it back.
        assert len(hidden) != 1, sizes
        for size in sizes:
            if size != "withheld":
                assert int(size.replace(",", "")) >= threshold, sizes


def test_about_this_score_withholds_a_small_group_and_the_one_that_gives_it_back() -> None:
    from service.about_score import about_score

    def group(name: str, n: int) -> dict[str, Any]:
        return {"attribute": "sex", "group": name, "n": n, "sufficient": n >= 100}

    report = {
        "policy": {"min_group_size": 100, "interval_level": 0.95},
        "overall": {"n": 1_100},
        "groups": [group("f", 600), group("m", 440), group("x", 60)],
    }
    about = about_score(report, name="m", version="1")
    assert [(g.group, g.people) for g in about.groups] == [("f", 600), ("m", None), ("x", None)]
    # m is withheld to protect x, yet still judged on its own.
    assert [g.judged for g in about.groups] == [True, True, False]

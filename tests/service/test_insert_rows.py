"""Rows handed straight to the driver (:func:`store.db.insert_rows`, the queue's entry groups):
the rows a plain ``insert()`` writes, converted columns (JSON, dates) converted as SQLAlchemy
converts them; a table with a default left to fill in takes the plain path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from store.db import Database, EntryGroup, QueueEntry, insert_rows

GROUPS = ("entry_id", "attribute", "group_name")


def _database(folder: Path) -> Database:
    folder.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{folder / 'service.db'}")
    db.upgrade()
    entries = [
        {
            "model_name": "m",
            "model_version": "1",
            "audit_id": "a",
            "period": "2024-01",
            "person_id": str(i),
            "rank": i,
            "score": 0.5,
            "percentile": 50.0,
            "band": "high",
            "reasons": [],
        }
        for i in range(1, 5)
    ]
    with db.transaction() as connection:
        connection.execute(insert(QueueEntry), entries)
    return db


def _groups(db: Database) -> list[tuple[Any, ...]]:
    with db.session() as session:
        return [
            (g.entry_id, g.attribute, g.group_name)
            for g in session.scalars(
                select(EntryGroup).order_by(EntryGroup.entry_id, EntryGroup.attribute)
            )
        ]


def test_rows_handed_to_the_driver_are_those_of_a_plain_insert(tmp_path: Path) -> None:
    rows = [(e, a, f"{a}-{e % 2}") for e in range(1, 5) for a in ("sex", "age_band")]
    rows.append((3, "area", "Nörth, \"quoted\" 'text'"))
    fast, plain = _database(tmp_path / "fast"), _database(tmp_path / "plain")
    with fast.transaction() as connection:
        insert_rows(connection, EntryGroup.__table__, GROUPS, rows)  # type: ignore[arg-type]
        insert_rows(connection, EntryGroup.__table__, GROUPS, [])  # type: ignore[arg-type]
    with plain.transaction() as connection:
        connection.execute(insert(EntryGroup), [dict(zip(GROUPS, r, strict=True)) for r in rows])
    assert _groups(fast) == _groups(plain) and len(_groups(fast)) == 9
    # Columns in another order than the table's land in the right places.
    again = _database(tmp_path / "again")
    with again.transaction() as connection:
        insert_rows(
            connection,
            EntryGroup.__table__,  # type: ignore[arg-type]
            ("group_name", "entry_id", "attribute"),
            [(r[2], r[0], r[1]) for r in rows],
        )
    assert _groups(again) == _groups(plain)


def test_a_table_with_conversions_or_defaults_takes_the_plain_insert(tmp_path: Path) -> None:
    """Queue entries have a JSON column and a Python-side default (``created_at``)."""
    db = _database(tmp_path)
    columns = ("model_name", "model_version", "audit_id", "period", "person_id", "rank")
    columns += ("score", "percentile", "band", "reasons")
    row = ("m", "1", "a", "2024-02", "9", 1, 0.9, 99.0, "high", [{"feature": "x"}])
    with db.transaction() as connection:
        insert_rows(connection, QueueEntry.__table__, columns, [row])  # type: ignore[arg-type]
    with db.session() as session:
        entry = session.scalars(select(QueueEntry).where(QueueEntry.period == "2024-02")).one()
        assert entry.reasons == [{"feature": "x"}] and entry.created_at is not None
        assert entry.source == "list"


@pytest.mark.parametrize("one_time", [True, False])
def test_converted_columns_handed_to_the_driver_read_back_as_a_plain_insert(
    tmp_path: Path, one_time: bool
) -> None:
    """Queue entries with every defaulted column given: the JSON reasons and the time of
    creation are converted as SQLAlchemy converts them, and read back the same (one time of
    creation for every row, converted once; or a time of its own for each)."""
    fast, plain = _database(tmp_path / "fast"), _database(tmp_path / "plain")
    start = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    columns = ("model_name", "model_version", "audit_id", "period", "person_id", "rank")
    columns += ("score", "percentile", "band", "reasons", "reason_features", "area")
    columns += ("source", "selection_probability", "created_at")
    rows = [
        (
            *("m", "1", "a", "2024-03", str(i), i, 0.25 * i, 10.0 * i, "high", reasons, "x", area),
            *("list", 1.0, start if one_time else start + timedelta(seconds=i, microseconds=i)),
        )
        for i, (reasons, area) in enumerate(
            [
                ([{"feature": "x", "value": None, "text": 'Nörth "q"'}], None),
                ([], "east"),
                ([{"feature": "y", "value": 2.5, "contribution": 0.125}], "west"),
            ],
            start=1,
        )
    ]
    with fast.transaction() as connection:
        insert_rows(connection, QueueEntry.__table__, columns, rows)  # type: ignore[arg-type]
    with plain.transaction() as connection:
        connection.execute(insert(QueueEntry), [dict(zip(columns, r, strict=True)) for r in rows])

    def entries(db: Database) -> list[tuple[Any, ...]]:
        with db.session() as session:
            found = session.scalars(
                select(QueueEntry).where(QueueEntry.period == "2024-03").order_by(QueueEntry.rank)
            )
            return [
                (e.person_id, e.reasons, e.area, e.created_at.replace(tzinfo=None), e.source)
                for e in found
            ]

    assert entries(fast) == entries(plain)
    stored = "SELECT person_id, reasons, created_at FROM queue_entries WHERE period = '2024-03'"
    with fast.transaction() as one, plain.transaction() as other:  # the very same texts
        assert one.exec_driver_sql(stored).all() == other.exec_driver_sql(stored).all()
    assert len(entries(fast)) == 3 and entries(fast)[0][1][0]["text"] == 'Nörth "q"'

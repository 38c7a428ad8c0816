"""Analysts' page: registered versions with their metrics at capacity and links to MLflow."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, current_app, g, render_template
from flask.typing import ResponseReturnValue

from service.pages.common import db, fmt_time, versions_now
from service.pages.security import signed_in
from store import approvals

pages = Blueprint("analyst", __name__, url_prefix="/analyst")


@pages.get("/versions")
@signed_in("versions")
def versions() -> ResponseReturnValue:
    ui = str(current_app.config["MLFLOW_UI_URL"]).rstrip("/")
    rows = versions_now()
    asked: dict[tuple[str, str], list[approvals.ReauditRequest]] = {}
    for found in approvals.reaudit_requests(db()):
        asked.setdefault((found.name, found.version), []).append(found)
    for row in rows:
        row["created_text"] = fmt_time(row["created"])
        row["reaudit_requests"] = [
            {"by": q.by, "at": fmt_time(q.at), "note": q.note}
            for q in asked.get((row["name"], row["version"]), [])
        ]
        row["mlflow_url"] = f"{ui}/#/models/{quote(row['name'])}/versions/{row['version']}"
    rows.sort(key=lambda r: (r["name"], -int(r["version"])))
    return render_template("analyst/versions.html", principal=g.principal, rows=rows, mlflow_ui=ui)

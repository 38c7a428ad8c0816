"""Coordinators' printable explanation for a person, and the "about this score" page.

The explanation's rules and words live in :mod:`service.person_explanation` (the same text as the
API's), the about page's in :mod:`service.about_score`; these views render them. Viewing an
explanation writes its access-log row (action ``explanation``) before anything is shown.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, render_template, request
from flask.typing import ResponseReturnValue

from kernel.errors import OutreachError, UnavailableError
from lifecycle.catalogue import read_report
from lifecycle.model_source import ModelSource, Serving
from service import about_score
from service import person_explanation as rules
from service.pages.common import db, model_name, registry
from service.pages.coordinator import unless_paused
from service.pages.security import signed_in
from store.queue import Caller

pages = Blueprint("explanation", __name__, url_prefix="/outreach")


@pages.after_request
def _no_store(response: Response) -> Response:
    # A person's explanation is personal data: no browser or proxy keeps a copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def explain(caller: Caller, person: str, month: str | None = None) -> rules.Explanation:
    """The explanation of ``person`` (their entry on ``month``'s list when given) for
    ``caller`` (logged first), as the API gives it."""
    return rules.explain_person(
        db(),
        caller,
        person,
        versions=rules.for_app(current_app),
        contact=rules.contact_for(current_app),
        month=month,
    )


def served() -> Serving:
    source: ModelSource = current_app.extensions["outreach.model"]
    current = source.current
    if current is None:
        raise UnavailableError(
            "No verified model is being served, so there is nothing to describe.",
            code="model_unavailable",
        )
    return current


@pages.get("/people/<path:person_id>/explanation")
@signed_in("explanation")
@unless_paused
def person_explanation(person_id: str) -> ResponseReturnValue:
    """The explanation a person can be given, ready to print."""
    month = request.args.get("period") or None
    found = explain(Caller(g.principal, g.request_id, model_name()), person_id, month)
    return render_template(
        "explanation/person.html",
        principal=g.principal,
        explanation=found,
        blocks=rules.blocks(found.text),
    )


@pages.get("/about")
@signed_in("about")
def about() -> ResponseReturnValue:
    """What the served version's score means and how accurate it is, from its audit."""
    current = served()
    try:
        report = read_report(registry(), current.audit_id)
    except (OutreachError, OSError, ValueError) as err:
        raise UnavailableError(
            f"The audit report {current.audit_id} of the served version cannot be read now.",
            code="audit_unavailable",
        ) from err
    found = about_score.about_score(report, name=current.name, version=current.version)
    return render_template(
        "explanation/about.html",
        principal=g.principal,
        about=found,
        measures=about_score.MEASURES,
        estimate=about_score.estimate_words,
        attribute_words=about_score.attribute_words,
        group_rows=about_score.group_rows,
    )

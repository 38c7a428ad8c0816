"""``outreach users``: accounts, passwords, tokens, roles and areas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kernel.errors import BadInputError
from kernel.home import Home
from outreach.cli.base import main, open_service_db, plural, progress, reported


@main.group()
def users() -> None:
    """Service users, their API tokens, areas and access.

    Tokens expire after OUTREACH_TOKEN_DAYS days (default 90) unless --days says otherwise.
    """


ROLE_CHOICE = click.Choice(["coordinator", "analyst", "oversight", "admin"])


DAYS_OPTION = click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Days the token works (default: OUTREACH_TOKEN_DAYS, else 90).",
)


def _expiry(days: int | None) -> str:
    from datetime import UTC, datetime, timedelta

    from store.accounts import default_token_days

    lifetime = days if days is not None else default_token_days()
    return f"{datetime.now(UTC) + timedelta(days=lifetime):%Y-%m-%d}"


#: What ``--password`` holds when given alone: ask for it without echo.
_ASK = "\x00ask"


def _new_password(password: str | None, from_stdin: bool, from_file: str | None) -> str | None:
    """The page password of ``users add``: asked for without echo (``--password`` alone), read
    from stdin (``--password-stdin``) or from a file (``--password-file``); never taken from the
    command line, where ``ps`` and /proc/*/cmdline show it to every local user."""
    given = [password is not None, from_stdin, from_file is not None]
    if sum(given) > 1:
        raise BadInputError("give one of --password, --password-stdin and --password-file")
    if password is not None and password != _ASK:
        raise BadInputError(
            "a password is never given on the command line (any local user can read it there): "
            "give --password alone to be asked for it without echo, or pipe it with "
            "--password-stdin, or name a file only you can read with --password-file PATH"
        )
    if password == _ASK:
        entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        return entered
    if from_stdin:
        return _first_line(sys.stdin.readline(), "stdin")
    if from_file is not None:
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BadInputError(f"--password-file {from_file}: cannot read it: {err}") from err
        return _first_line(text.splitlines()[0] if text else "", from_file)
    return None


def _first_line(line: str, where: str) -> str:
    value = line.rstrip("\r\n")
    if not value:
        raise BadInputError(f"no password in {where} (its first line is empty)")
    return value


@users.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option(
    "--password",
    is_flag=False,
    flag_value=_ASK,
    default=None,
    help="Also set a password for the web pages (12+ characters): give the option alone to be "
    "asked for it without echo (a value on the command line is refused).",
)
@click.option(
    "--password-stdin",
    "password_stdin",
    is_flag=True,
    help="Read the page password from the first line of stdin.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="Read the page password from the first line of this file.",
)
@DAYS_OPTION
@click.pass_obj
@reported
def users_add(
    home: Home,
    name: str,
    role: str,
    password: str | None,
    password_stdin: bool,
    password_file: str | None,
    days: int | None,
) -> None:
    """Create a user; prints its API token once, alone on the last line."""
    from store.accounts import add_user

    secret = _new_password(password, password_stdin, password_file)
    expires = _expiry(days)
    token = add_user(open_service_db(home), name, role, password=secret, days=days)
    click.echo(f"created {role} '{name}'; its API token (shown only now; expires {expires}):")
    click.echo(token)


@users.command("password")
@click.argument("name")
@click.password_option(help="The new password (12+ characters); asked for without echo.")
@click.pass_obj
@reported
def users_password(home: Home, name: str, password: str) -> None:
    """Set or replace a user's password for the web pages.

    Also ends every page session of the user and revokes every API token they hold.
    """
    from store.accounts import set_password

    revoked = set_password(open_service_db(home), name, password)
    click.echo(
        f"password set for '{name}'; signed out everywhere and "
        f"{plural(revoked, 'API token')} revoked (outreach users token {name} makes a new one)"
    )


@users.command("token")
@click.argument("name")
@DAYS_OPTION
@click.pass_obj
@reported
def users_token(home: Home, name: str, days: int | None) -> None:
    """A new API token for NAME; printed once, alone on the last line."""
    from store.accounts import issue_token

    expires = _expiry(days)
    token = issue_token(open_service_db(home), name, days=days)
    click.echo(f"new API token for '{name}' (shown only now; expires {expires}):")
    click.echo(token)


@users.command("tokens")
@click.argument("name")
@click.pass_obj
@reported
def users_tokens(home: Home, name: str) -> None:
    """List NAME's API tokens: id, created, expires, status (never the token itself)."""
    from store.accounts import list_tokens

    found = list_tokens(open_service_db(home), name)
    if not found:
        click.echo(f"'{name}' has no API tokens")
        return
    click.echo(f"{'id':>6}  {'created':<17}  {'expires':<17}  status")
    for info in found:
        expires = f"{info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at else "-"
        click.echo(f"{info.id:>6}  {info.created_at:%Y-%m-%d %H:%M}  {expires:<17}  {info.status}")


@users.command("revoke-token")
@click.argument("name")
@click.option("--id", "token_id", type=click.IntRange(min=1), help="The token's id (users tokens).")
@click.option("--all", "every", is_flag=True, help="Every token of NAME.")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the token itself from stdin (never give a token as an argument: it would be "
    "kept in shell history and shown to other users by ps).",
)
@click.pass_obj
@reported
def users_revoke_token(
    home: Home, name: str, token_id: int | None, every: bool, token_stdin: bool
) -> None:
    """Revoke one of NAME's API tokens (--id or --token-stdin) or all of them (--all).

    A revoked token is refused from the next request on, in every worker.
    """
    from store.accounts import revoke_token_value, revoke_tokens

    if sum((token_id is not None, every, token_stdin)) != 1:
        raise BadInputError("say which token: exactly one of --id ID, --all or --token-stdin")
    db = open_service_db(home)
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise BadInputError("no token on stdin")
        found = revoke_token_value(db, name, token)
        click.echo(f"revoked token {found} of '{name}'")
        return
    revoked = revoke_tokens(db, name, token_id=token_id)
    if token_id is not None:
        state = "revoked" if revoked else "was already revoked:"
        click.echo(f"{state} token {token_id} of '{name}'")
    else:
        click.echo(f"revoked {plural(revoked, 'API token')} of '{name}'")


@users.command("disable")
@click.argument("name")
@click.pass_obj
@reported
def users_disable(home: Home, name: str) -> None:
    """Disable NAME: no sign-in, every page session ended, every API token revoked."""
    from store.accounts import disable_user

    revoked = disable_user(open_service_db(home), name)
    click.echo(
        f"disabled '{name}': signed out everywhere and {plural(revoked, 'API token')} revoked"
    )


@users.command("delete")
@click.argument("name")
@click.pass_obj
@reported
def users_delete(home: Home, name: str) -> None:
    """Remove NAME: every API token revoked and every page session ended first, then the user
    (a new user never gets its id again)."""
    from store.accounts import delete_user

    revoked = delete_user(open_service_db(home), name)
    click.echo(
        f"deleted '{name}': {plural(revoked, 'API token')} revoked and every session ended first"
    )


@users.command("enable")
@click.argument("name")
@click.pass_obj
@reported
def users_enable(home: Home, name: str) -> None:
    """Let a disabled user sign in again; their old tokens stay revoked."""
    from store.accounts import enable_user

    was = enable_user(open_service_db(home), name)
    if not was:
        click.echo(f"'{name}' was not disabled; nothing changed")
        return
    click.echo(
        f"enabled '{name}': they may sign in with their password; old API tokens stay revoked "
        f"(outreach users token {name} makes a new one)"
    )


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
@click.pass_obj
@reported
def users_set_role(home: Home, name: str, role: str) -> None:
    """Give NAME a new role: page sessions end; API tokens carry the new role from the next
    request (revoke them with revoke-token --all if that is not wanted); leaving the
    coordinator role clears the areas."""
    from store.accounts import set_role

    change = set_role(open_service_db(home), name, role)
    if change.previous == role:
        click.echo(f"'{name}' is already {role}; nothing changed")
    else:
        click.echo(
            f"'{name}' is now {role} (was {change.previous}); signed out of the pages; API "
            "tokens kept, with the new role"
        )
    if change.cleared:
        click.echo(f"areas cleared (only coordinators have areas): {', '.join(change.cleared)}")


@users.command("areas")
@click.argument("name")
@click.argument("area", nargs=-1)
@click.option("--clear", is_flag=True, help="Remove every area (the coordinator sees no one).")
@click.pass_obj
@reported
def users_areas(home: Home, name: str, area: tuple[str, ...], clear: bool) -> None:
    """Set the areas coordinator NAME works in (replacing the old ones), or show them.

    '*' stands for every area. With no AREA and no --clear, prints the current areas. Applies
    from the user's next request.
    """
    from store.accounts import areas_of, known_areas, set_areas

    db = open_service_db(home)
    if clear and area:
        raise BadInputError("give areas or --clear, not both")
    if not clear and not area:
        now = areas_of(db, name)
        click.echo(f"'{name}' works in: {', '.join(now)}" if now else f"'{name}' has no areas")
        return
    chosen = set_areas(db, name, list(area))
    if not chosen:
        click.echo(f"cleared the areas of '{name}': they see no one on the outreach list")
        return
    click.echo(f"'{name}' now works in: {', '.join(chosen)}")
    unknown = sorted(set(chosen) - set(known_areas(db)) - {"*"})
    if unknown:
        progress(f"warning: no outreach list has these areas yet: {', '.join(unknown)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
@reported
def users_list(home: Home, as_json: bool) -> None:
    """Every user: role, status, working API tokens, page password, areas."""
    from store.accounts import list_users

    found = list_users(open_service_db(home))
    if as_json:
        document = [
            {
                "name": u.name,
                "role": u.role,
                "disabled": u.disabled,
                "password": u.password,
                "active_tokens": u.active_tokens,
                "areas": list(u.areas),
            }
            for u in found
        ]
        click.echo(json.dumps({"users": document}, indent=2))
        return
    if not found:
        click.echo("no users yet (outreach users add NAME --role ROLE)")
        return
    width = max(4, *(len(u.name) for u in found))
    click.echo(f"{'name':<{width}}  {'role':<11}  {'status':<8}  tokens  pages  areas")
    for u in found:
        click.echo(
            f"{u.name:<{width}}  {u.role:<11}  {'disabled' if u.disabled else 'active':<8}  "
            f"{u.active_tokens:>6}  {'yes' if u.password else 'no':<5}  "
            f"{', '.join(u.areas) if u.areas else '-'}"
        )


@users.command("unlock")
@click.argument("name")
@click.pass_obj
@reported
def users_unlock(home: Home, name: str) -> None:
    """Lift the sign-in locks on NAME (after too many wrong passwords), at every address."""
    from store.signin_limits import unlock

    removed = unlock(open_service_db(home), name)
    if removed:
        click.echo(f"lifted the sign-in locks and counts on '{name}'")
    else:
        click.echo(f"'{name}' had no sign-in locks or counts")

"""``outreach keys``: the release signing key, shown and rotated."""

from __future__ import annotations

import click

from kernel.home import Home
from outreach.cli.base import main, reported


@main.group()
def keys() -> None:
    """The release signing key: where it is, and replacing it."""


@keys.command("show")
@click.pass_obj
@reported
def keys_show(home: Home) -> None:
    """Print the release public key's path and id (the id to pin with
    OUTREACH_RELEASE_PUBLIC_KEY in production)."""
    from lifecycle.verified_loading import trust_for

    trust = trust_for(home, signing=False)
    pinned = home.signing_keys.pinned_key_id
    click.echo(f"release public key {home.signing_keys.release_public}: id {trust.verifier.key_id}")
    if pinned:
        click.echo(f"pinned by OUTREACH_RELEASE_PUBLIC_KEY: {pinned}")
    click.echo(trust.verifier.key_id)


@keys.command("rotate")
@click.pass_obj
@reported
def keys_rotate(home: Home) -> None:
    """Replace the release key. What the old key signed still holds; it can sign nothing new."""
    from lifecycle.statements import rotate

    old, new = rotate(home.signing_keys, home.attestations)
    click.echo(
        f"release key {old} retired, {new} in use; give services the new public key "
        f"{home.signing_keys.release_public} (OUTREACH_RELEASE_PUBLIC_KEY) and keep "
        f"{home.signing_keys.release.parent / 'retired'} beside it"
    )

"""``georef matchers``: the matchers and the weights each needs."""

from __future__ import annotations

import click


@click.command()
def matchers():
    """List the matchers (--matcher NAME) and their weights."""
    from georef.matchers import DESCRIPTIONS

    for name, description in DESCRIPTIONS.items():
        click.echo(f"{name:18s} {description}")

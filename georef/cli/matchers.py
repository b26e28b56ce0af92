"""``georef matchers``: the matchers, the weights each needs, and the transform models."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Matchers and models as JSON, for programs (the QGIS plugin).")
def matchers(as_json):
    """List the matchers (--matcher NAME) and their weights."""
    from georef.matchers import REGISTRY
    from georef.options import AlignOptions
    from georef.transforms import MODEL_NAMES

    if as_json:
        listing = {
            "matchers": [{"name": m.name, "description": m.description, "weights": m.weights}
                         for m in REGISTRY.values()],
            "models": list(MODEL_NAMES),
            "defaults": {"matcher": AlignOptions.matcher, "model": AlignOptions.model},
        }
        click.echo(json.dumps(listing, indent=1))
        return
    for m in REGISTRY.values():
        click.echo(f"{m.name:18s} {m.description}")

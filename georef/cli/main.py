"""The ``georef`` command group: logging, version, and mapping errors to exit codes."""

from __future__ import annotations

import logging
import sys

import click

from georef import __version__
from georef.errors import GeorefError


class GeorefGroup(click.Group):
    """Runs a command and turns a :class:`GeorefError` into one line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GeorefError as exc:
            click.echo(f"georef: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=GeorefGroup)
@click.version_option(__version__, prog_name="georef")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Georeference satellite scenes automatically against a reference."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="georef: %(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("georef").setLevel(level)


def _register() -> None:
    from georef.cli.align import align
    from georef.cli.benchmark import benchmark
    from georef.cli.fit import fit
    from georef.cli.gcps import gcps
    from georef.cli.matchers import matchers
    from georef.cli.models import models
    from georef.cli.scene_benchmark import scene_benchmark

    for command in (align, benchmark, scene_benchmark, gcps, fit, matchers, models):
        cli.add_command(command)


_register()

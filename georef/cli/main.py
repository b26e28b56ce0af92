"""The ``georef`` command group: logging, threads, and mapping errors to exit codes.

Exit codes: 0 success; 2 bad input or usage (one line naming the file and the
problem); 3 no acceptable alignment; 130 interrupted; 143 terminated (SIGTERM);
1 an internal error (a bug: one line, the traceback with ``-v``).
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from georef import __version__
from georef.cli.options import flag
from georef.errors import GeorefError, one_line

log = logging.getLogger("georef")


class GeorefGroup(click.Group):
    """Runs a command; turns errors into one line on stderr and an exit code, and SIGTERM into a clean exit."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:  # usage errors too: one line, not click's three
            context = getattr(exc, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            click.echo(f"georef: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("georef: interrupted; nothing written", err=True)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code

    def invoke(self, ctx):
        from georef.files import Terminated, terminate_on_sigterm

        try:
            with terminate_on_sigterm():
                return super().invoke(ctx)
        except GeorefError as exc:
            click.echo(f"georef: error: {exc.render(flag)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("georef: interrupted; nothing written", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("georef: terminated; nothing written", err=True)
            sys.exit(143)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: one line, and the traceback on request
            message = one_line(exc, 300)
            click.echo(f"georef: internal error: {type(exc).__name__}: {message} (a bug: please report it with "
                       "the output of georef -v)", err=True)
            if log.isEnabledFor(logging.INFO):
                click.echo(traceback.format_exc(), err=True)
            sys.exit(1)


class _OneLine(logging.Formatter):
    """Log records on one line each (GDAL's messages included)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(super().format(record).split("\n"))


@click.group(cls=GeorefGroup)
@click.version_option(__version__, prog_name="georef")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch threads [default: OMP_NUM_THREADS, else 2 or the cores there are].")
def cli(verbose: int, quiet: bool, threads: int | None) -> None:
    """Georeference satellite scenes automatically against a reference."""
    from georef import allocator, threads as torch_threads

    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("georef: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # GDAL reports through rasterio's loggers: its errors reach the user as georef's own line, not twice.
    logging.getLogger("rasterio").setLevel(logging.CRITICAL if not verbose else level)
    torch_threads.request(threads)
    allocator.configure()


def _register() -> None:
    from georef.cli.align import align
    from georef.cli.batch import batch
    from georef.cli.batch_benchmark import batch_benchmark
    from georef.cli.benchmark import benchmark
    from georef.cli.fit import fit
    from georef.cli.gcps import gcps
    from georef.cli.matchers import matchers
    from georef.cli.scene_benchmark import scene_benchmark
    from georef.cli.weights import weights

    for command in (align, batch, benchmark, batch_benchmark, scene_benchmark, gcps, fit, matchers, weights):
        cli.add_command(command)


_register()

"""``python -m georef``: the command line, for front ends that run the core in its own environment."""

import signal

if __name__ == "__main__":
    # Front ends cancel the core with SIGINT. A child inherits an ignored SIGINT from a parent that ignores it
    # (QGIS started in the background), and would then run to its end however often it was canceled. Set
    # before the command line is imported: a cancel during that import would be lost.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from georef.cli.main import cli

    cli(prog_name="georef")

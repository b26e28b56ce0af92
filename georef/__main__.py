"""``python -m georef``: the command line, for front ends that run the core in its own environment."""

from georef.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="georef")

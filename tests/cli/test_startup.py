"""``--help`` of every command answers without importing the heavy stack."""

import json
import subprocess
import sys

HEAVY = ("torch", "kornia", "geopandas", "matplotlib")

_PROBE = """
import json, sys
from click.testing import CliRunner
from georef.cli.main import cli

paths = [[]]
for name, command in cli.commands.items():
    paths.append([name])
    paths += [[name, sub] for sub in getattr(command, "commands", {})]
codes = {" ".join(p) or "georef": CliRunner().invoke(cli, [*p, "--help"]).exit_code for p in paths}
print(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1:])}))
"""


def test_help_imports_no_heavy_module():
    out = subprocess.run([sys.executable, "-c", _PROBE, *HEAVY], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert len(result["codes"]) >= 10 and set(result["codes"].values()) == {0}, result["codes"]
    assert result["loaded"] == []


def test_every_option_says_what_it_does():
    import click

    from georef.cli.main import cli

    ctx = click.Context(cli)
    silent = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        subs = [(f"{name} {s}", command.get_command(ctx, s)) for s in command.list_commands(ctx)] \
            if isinstance(command, click.Group) else [(name, command)]
        silent += [f"{path} {param.opts[0]}" for path, sub in subs for param in sub.params
                   if isinstance(param, click.Option) and not param.help and not param.hidden]
    assert not silent

"""``georef benchmark``: true error of matchers on cases with a known transform."""

from __future__ import annotations

from pathlib import Path

import click

from georef.align import AlignOptions
from georef.cli import options


def _seasons(ctx, param, value):
    pairs = []
    for item in value.split(","):
        tgt, sep, ref = item.partition(":")
        if not sep or not tgt or not ref:
            raise click.BadParameter(f"{item!r} is not TARGET:REFERENCE, e.g. winter:summer")
        pairs.append((tgt, ref))
    return pairs


@click.command()
@click.argument("pairs", type=click.Path(exists=True, file_okay=False))
@click.option("--matchers", default="xfeat", show_default=True, help="Comma-separated matcher names.")
@options.model
@click.option("--seasons", callback=_seasons, default="winter:summer", show_default=True,
              help="Comma-separated TARGET:REFERENCE season pairs.")
@click.option("--tiles", help="Comma-separated tiles [default: all].")
@click.option("--case", "case_kind", type=click.Choice(["warp", "shift"]), default="warp", show_default=True,
              help="warp: target pixels moved by a random known affine; shift: geotransform offset only.")
@click.option("--seed", default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N pairs.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
def benchmark(pairs, matchers, model, seasons, tiles, case_kind, seed, limit, out_dir):
    """Align the cases built from the s2-seasons folder PAIRS and measure the true error."""
    from georef.benchmark.cases import make_shift_case, make_warp_case, s2_seasons_pairs
    from georef.benchmark.run import run_benchmark
    from georef.matchers import MATCHERS

    names = [m.strip() for m in matchers.split(",") if m.strip()]
    unknown = [m for m in names if m not in MATCHERS]
    if unknown:
        raise click.BadParameter(f"unknown matcher {unknown[0]!r}; choose from {', '.join(MATCHERS)}",
                                 param_hint="--matchers")
    found = s2_seasons_pairs(pairs, seasons, tiles.split(",") if tiles else None)[:limit]
    workdir = Path(out_dir) / "cases"
    make = make_warp_case if case_kind == "warp" else make_shift_case
    cases = [make(p, workdir, seed=seed) for p in found]
    summary = run_benchmark(cases, names, out_dir, AlignOptions(model=model, seed=seed))
    for name, s in summary.items():
        click.echo(
            f"{name}: {s['cases']} cases, <1px {s['within_1px']:.0%}, <3px {s['within_3px']:.0%}, "
            f"median {s['median_px']:.2f} px, p90 {s['p90_px']:.2f} px, "
            f"wrong but accepted {s['wrong_but_accepted']}, median {s['median_s']:.2f} s/pair"
        )

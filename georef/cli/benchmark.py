"""``georef benchmark``: true error of matchers on cases with a known transform."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from georef.benchmark.layout import PEERS
from georef.benchmark.regimes import BORDERS
from georef.cli import options
from georef.matchers import MATCHERS
from georef.options import AlignOptions, RefineOptions
from georef.transforms import AUTO, MATRIX_MODELS


def _names(allowed, allow_empty: bool = False):
    def parse(ctx, param, value):
        names = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not (names or allow_empty):
            raise click.BadParameter(f"{unknown[0] if unknown else value!r} is not one of {', '.join(allowed)}")
        return names
    return parse


def _floats(ctx, param, value):
    try:
        return [float(v) for v in value.split(",") if v.strip()] if value else []
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def _range(ctx, param, value):
    if not value:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not LOW,HIGH, e.g. 0.1,0.3") from None
    if not 0 < low <= high < 1:
        raise click.BadParameter(f"{value!r}: shares must satisfy 0 < LOW <= HIGH < 1")
    return (low, high)


def _seeds(ctx, param, value):
    """``N``, ``A-B`` or ``A,B,...`` -> a list of distinct non-negative seeds, in order."""
    seeds = []
    for item in str(value).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if not match:
            raise click.BadParameter(f"{item.strip()!r} is not a non-negative seed N or range A-B (e.g. 0-4 or 0,3,7)")
        seeds += range(int(match[1]), int(match[2] or match[1]) + 1)
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{value!r}: a range runs upwards, and no seed comes twice")
    return seeds


def _seasons(ctx, param, value):
    pairs = []
    for item in value.split(","):
        tgt, sep, ref = item.partition(":")
        if not sep or not tgt or not ref:
            raise click.BadParameter(f"{item!r} is not TARGET:REFERENCE, e.g. winter:summer")
        pairs.append((tgt, ref))
    return pairs


@click.command()
@click.argument("pairs", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--matchers", default="xfeat", show_default=True, callback=_names(MATCHERS),
              help="Comma-separated matchers, compared side by side.")
@click.option("--models", default=AUTO, show_default=True, callback=_names((AUTO, *MATRIX_MODELS)),
              help="Comma-separated transform models, compared side by side.")
@click.option("--thresholds", callback=_floats, help="RANSAC thresholds (px) to sweep, e.g. 1,3,5,10.")
@click.option("--seasons", callback=_seasons, default="winter:summer", show_default=True,
              help="Comma-separated TARGET:REFERENCE season pairs (s2-seasons folders).")
@click.option("--tiles", help="Comma-separated tiles [default: all].")
@click.option("--case", "case_kind", type=click.Choice(["warp", "shift"]), default="warp", show_default=True,
              help="warp: target pixels moved by a random known transform; shift: geotransform offset only.")
@click.option("--max-shift-px", type=options.Finite(0), default=40.0, show_default=True, help="warp: largest shift per axis.")
@click.option("--max-rotation", type=options.Finite(0, 180), default=2.0, show_default=True, help="warp: largest rotation, degrees.")
@click.option("--max-scale", type=options.Finite(0, 0.9), default=0.02, show_default=True, help="warp: largest relative scale change.")
@click.option("--perspective", type=options.Finite(0), default=0.0, show_default=True, help="warp: largest projective term, per pixel.")
@click.option("--max-shift-m", type=options.Finite(0), default=300.0, show_default=True, help="shift: largest offset per axis, metres.")
@click.option("--target-res", type=click.Choice(["10", "20", "30", "60"]), default="10", show_default=True,
              help="warp: the target area-averaged to this pixel size, metres.")
@click.option("--reference-res", type=click.Choice(["10", "20", "30", "60"]), default="10", show_default=True,
              help="warp: the reference area-averaged to this pixel size, metres.")
@click.option("--reference-crs", callback=options.crs_option, metavar="CRS",
              help="warp: the reference reprojected to this CRS (e.g. EPSG:3857) [default: the tile's].")
@click.option("--crop", type=click.IntRange(min=64, max=512), help="warp: the target cut to this side, px.")
@click.option("--occlusion", callback=_range, metavar="LOW,HIGH",
              help="warp: share of the target under opaque clouds (not masked), drawn per case, e.g. 0.1,0.3.")
@click.option("--overlap", callback=_range, metavar="LOW,HIGH",
              help="warp: share of the target's footprint over the reference, drawn per case, e.g. 0.4,0.6.")
@click.option("--border", type=click.Choice(BORDERS), default="mask", show_default=True,
              help="warp: the target's empty corners as an internal mask, as nodata 0, or as plain 0.")
@click.option("--strip", type=click.IntRange(min=0), default=0, show_default=True,
              help="warp: N cases per tile on its 512 x 5120 strip of subtiles (coarse to fine).")
@click.option("--seed", "seeds", callback=_seeds, default="0", show_default=True,
              help="Seed of the cases' draws; several (0-4 or 0,3,7): each run in OUT/seed-N and pooled in "
                   "OUT/seeds.md.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N pairs.")
@click.option("--show", help="Comma-separated case names to draw [default: two worst, two best].")
@click.option("--refine-lowpass", type=options.Finite(0, 0.5, low_open=True), default=RefineOptions.lowpass_sigma,
              show_default=True, help="Width of the refinement's spectral weight, cycles per pixel.")
@click.option("--peers", callback=_names(PEERS, allow_empty=True), default="",
              help="Other tools run on the same cases, side by side: arosics (its environment: "
                   "bash tools/install_arosics.sh).")
@options.weights
@options.device
def benchmark(pairs, out_dir, matchers, models, thresholds, seasons, tiles, case_kind, max_shift_px,
              max_rotation, max_scale, perspective, max_shift_m, target_res, reference_res, reference_crs, crop,
              occlusion, overlap, border, strip, seeds, limit, show, refine_lowpass, peers, weights, device):
    """Align the cases of PAIRS and measure their true error.

    PAIRS is a folder in the s2-seasons layout (with manifest.json), or a CSV
    with columns target, reference and optionally a-f, the true target pixel ->
    reference map affine (rasterio order).
    """
    from georef.benchmark.cases import CaseSpec, WarpSpec
    from georef.benchmark.regimes import Regime
    from georef.benchmark.run import Settings, benchmark as run
    from georef.benchmark.seeds import run_seeds

    seed = seeds[0]
    base = AlignOptions(seed=seed, weights=weights, device=device, refine=RefineOptions(lowpass_sigma=refine_lowpass))
    spec = CaseSpec(
        kind=case_kind, seasons=seasons, tiles=tiles.split(",") if tiles else None, seed=seed, limit=limit,
        warp=WarpSpec(max_shift_px, max_rotation, max_scale, perspective), max_shift_m=max_shift_m,
        regime=Regime(int(target_res) // 10, int(reference_res) // 10, crop or 0, occlusion, overlap, border,
                      reference_crs),
        strip=strip,
    )
    settings = Settings(matchers=tuple(matchers), models=tuple(models), thresholds=tuple(thresholds), options=base,
                        peers=tuple(peers), command="georef " + " ".join(sys.argv[1:]),
                        show=tuple(show.split(",")) if show else None)
    if len(seeds) > 1:
        pooled = run_seeds(pairs, out_dir, seeds, spec, settings)
        for key, s in pooled["settings"].items():
            per_seed = " / ".join(f"{v:.0%}" for v in s["per_seed"].values())
            click.echo(f"{key}: {s['cases']} cases, accepted <1px {s['accepted_within_1px']:.0%} "
                       f"(seeds: {per_seed}), wrong but accepted {s['wrong_but_accepted']}")
        click.echo(f"report: {Path(out_dir) / 'seeds.md'}")
        return
    summary = run(pairs, out_dir, spec, settings)
    for key, s in summary["settings"].items():
        click.echo(
            f"{key}: {s['cases']} cases, <1px {s['within_1px']:.0%}, <3px {s['within_3px']:.0%}, "
            f"median {s['median_px']:.2f} px ({s['median_m']:.1f} m), p90 {s['p90_px']:.2f} px, "
            f"accepted <1px {s['accepted_within_1px']:.0%}, wrong but accepted {s['wrong_but_accepted']}, "
            f"median {s['median_s']:.2f} s/pair"
        )
    click.echo(f"report: {Path(out_dir) / 'report.md'}")

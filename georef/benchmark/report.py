"""The benchmark's Markdown report and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from georef import geometry
from georef.benchmark.cases import Case
from georef.benchmark.consistency import centre_offset, map_error, season_consistency, split_name
from georef.benchmark.layout import PEERS, case_paths, row_key, setting_key
from georef.benchmark.metrics import THRESHOLDS_PX, WRONG_PX, has_error, summarise_rows
from georef.benchmark.peers import paired
from georef.report import pyplot

CDF_MAX_PX = 10.0


def _rows_of(rows: list[dict], key: str) -> list[dict]:
    return [r for r in rows if row_key(r["matcher"], r["model"], r["threshold"], r["group"]) == key]


def _save(fig, axes, path: Path, legend_size: int) -> Path:
    for ax in np.atleast_1d(axes):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return path


def plot_cdf(rows: list[dict], keys: list[str], path: Path) -> Path:
    """Cumulative share of cases below each error, one line per setting."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    grid = np.linspace(0, CDF_MAX_PX, 400)
    for key in keys:
        errors = np.array([float(r["error_px"]) for r in _rows_of(rows, key) if has_error(r)])
        if len(errors):
            ax.plot(grid, [(errors < g).mean() for g in grid], label=key)
    ax.set(xlabel="error at the target's corners, px", ylabel="share of cases", xlim=(0, CDF_MAX_PX), ylim=(0, 1))
    return _save(fig, ax, path, 8)


def plot_sweep(summary: dict, path: Path) -> Path:
    """Inliers, inlier ratio and true error against the RANSAC threshold, per matcher."""
    plt = pyplot()
    entries = list(summary["settings"].values())
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=110)
    lines = sorted({(e["matcher"], e["model"], e["group"]) for e in entries})
    for i, line in enumerate(lines):
        mine = sorted((e for e in entries if (e["matcher"], e["model"], e["group"]) == line), key=lambda e: e["threshold"])
        if len(mine) < 2:
            continue
        t, colour, label = [e["threshold"] for e in mine], f"C{i % 10}", f"{line[0]} {line[2]}"
        axes[0].plot(t, [e["median_inliers"] for e in mine], "o-", color=colour, label=label)
        axes[1].plot(t, [e["median_inlier_ratio"] for e in mine], "o-", color=colour, label=label)
        axes[2].plot(t, [e["within_1px"] for e in mine], "o-", color=colour, label=f"{label} < 1 px")
        axes[2].plot(t, [e["within_3px"] for e in mine], "s--", color=colour, label=f"{label} < 3 px")
    for ax, title in zip(axes, ("median inliers", "median inlier ratio", "share of cases (true error)")):
        ax.set(xlabel="RANSAC threshold, px", title=title)
    return _save(fig, axes, path, 7)


def _stretched(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An RGB (or grey) view of a raster in [0, 1] and its pixel -> map transform."""
    import rasterio

    with rasterio.open(path) as ds:
        bands = ds.read(list(ds.indexes)[:3]).astype(np.float32)
        valid = ds.dataset_mask() > 0
        transform = geometry.to_matrix(ds.transform)
    out = np.zeros_like(bands)
    for i, b in enumerate(bands):
        lo, hi = np.percentile(b[valid], (2, 98)) if valid.any() else (0, 1)
        out[i] = np.clip((b - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.moveaxis(out, 0, -1).squeeze(), transform


def plot_matches(cases: list[Case], report_paths: list[Path], path: Path, max_lines: int = 150) -> Path:
    """Target | reference per case, inlier tie points joined by lines coloured by residual."""
    plt = pyplot()
    n = len(cases)
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.7 * rows), dpi=100, squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.9, top=0.95, bottom=0.02, wspace=0.03, hspace=0.12)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, case, report in zip(axes.ravel(), cases, report_paths):
        data = json.loads(report.read_text())
        tp = data["alignment"]["tie_points"]
        inl = np.asarray(tp["inlier"], bool)
        src = np.asarray(tp["target_px"]).reshape(-1, 2)[inl]
        map_xy = np.asarray(tp["map_xy"]).reshape(-1, 2)[inl]
        residual = np.asarray(tp["residual_px"])[inl]
        tgt, _ = _stretched(case.target)
        ref, ref_transform = _stretched(case.reference)
        dst = geometry.apply(np.linalg.inv(ref_transform), map_xy)
        gap = 10
        h = max(tgt.shape[0], ref.shape[0])
        canvas = np.ones((h, tgt.shape[1] + gap + ref.shape[1], 3), np.float32)
        canvas[: tgt.shape[0], : tgt.shape[1]] = tgt[..., None] if tgt.ndim == 2 else tgt
        canvas[: ref.shape[0], tgt.shape[1] + gap :] = ref[..., None] if ref.ndim == 2 else ref
        ax.imshow(canvas)
        pick = np.random.default_rng(0).permutation(len(src))[:max_lines]
        colours = plt.cm.viridis(np.clip(residual[pick] / 2.0, 0, 1))
        for (x0, y0), (x1, y1), c in zip(src[pick] - 0.5, dst[pick] - 0.5, colours):
            ax.plot([x0, x1 + tgt.shape[1] + gap], [y0, y1], color=c, lw=0.4, alpha=0.8)
        estimate = data.get("estimated_ce90_px")
        ax.set_title(f"{case.name}  {data['matcher']}: {data['inliers']} inliers, estimated CE90 "
                     f"{'-' if estimate is None else f'{estimate:.2f}'} px",
                     fontsize=8)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, 2.0))
    fig.colorbar(sm, cax=fig.add_axes([0.92, 0.2, 0.015, 0.6]), label="residual, px")
    fig.savefig(path)
    plt.close(fig)
    return path


def tile_lines(rows: list[dict], cases: list[Case], keys: list[str]) -> list[str]:
    """The report's per-tile section; empty unless the cases hold several tiles with several cases each.

    A tile whose accepted estimates share one offset from the truth, larger than their spread, points at
    the data (its seasons' grids) rather than at the method: every tool meets it there.
    """
    by_name = {c.name: c for c in cases}
    tiles = sorted({split_name(c.name)[0] for c in cases})
    if len(tiles) < 2 or len(tiles) == len(cases):
        return []
    lines = [
        "## By tile",
        "",
        ("*Offset*: the mean error of the accepted estimates at the targets' centres (pixels, x east, y south); "
         "*spread*: their RMS distance from that mean. An offset larger than its spread that every setting "
         "shares is the tile's, not the method's (docs/benchmarks.md, *The data's floor*)."),
        "",
        "| setting | tile | cases | < 1 px | accepted < 1 px | refused | wrong but accepted | "
        "true error <= estimate | median px | offset x px | offset y px | spread px |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        mine = [r for r in _rows_of(rows, key) if r["case"] in by_name and has_error(r)]
        for tile in tiles:
            of_tile = [r for r in mine if split_name(r["case"])[0] == tile]
            if not of_tile:
                continue
            e = summarise_rows(of_tile)
            accepted = [(r, by_name[r["case"]]) for r in of_tile if r["accepted"] == "True" and r.get("estimate")]
            offsets = np.array([centre_offset(map_error(r, case), case) for r, case in accepted]).reshape(-1, 2)
            offset = ["-"] * 3
            if len(offsets):
                mean = offsets.mean(axis=0)
                spread = np.sqrt(np.mean(np.sum((offsets - mean) ** 2, axis=1)))
                x, y = np.round(mean, 2) + 0.0  # no "-0.00"
                offset = [f"{x:+.2f}", f"{y:+.2f}", f"{spread:.2f}"]
            lines.append(
                f"| {key} | {tile} | {e['cases']} | {e['within_1px']:.0%} | {share_text(e['accepted_within_1px'])} | "
                f"{e['refused']} | **{e['wrong_but_accepted']}** | {share_text(e.get('within_estimate'))} | "
                f"{e['median_px']:.2f} | " + " | ".join(offset) + " |")
    return [*lines, ""]


def consistency_lines(rows: list[dict], cases: list[Case], keys: list[str]) -> list[str]:
    """The report's season-consistency section; empty where no season triangle was run."""
    settings = sorted({k.split(" ")[0] for k in keys})
    results = {s: season_consistency([r for r in rows if setting_key(r) == s], cases) for s in settings}
    if not any(closures for _, closures in results.values()):
        return []
    lines = [
        "## Season consistency",
        "",
        ("The truth takes all seasons of a file to share one pixel grid. *Offset*: the mean error at the "
         "targets' centres per tile and season pair (pixels, x east, y south). *Loop closure*: the "
         "a->b estimate against a->c followed by c->b, per file, with no truth involved. Where a tile's mean "
         "a->b offset equals its a->c offset plus its c->b offset, and exceeds their spread, it is in the data: "
         "no method scores below it against this truth."),
        "",
        "| setting | tile | season pair | cases | offset x px | offset y px | spread px |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting, (offsets, _) in results.items():
        lines += [f"| {setting} | {o.tile} | {o.group} | {o.cases} | {o.x_px:+.2f} | {o.y_px:+.2f} | "
                  f"{o.spread_px:.2f} |" for o in offsets]
    lines += ["", ("*Closure <= estimates*: the share of files whose closure is at most their three estimated "
                   "CE90s in quadrature, a check of the estimates that needs no truth (about 90 % if they are "
                   "calibrated; it cannot see what a scene shares with both its pairs)."), "",
              ("| setting | tile | loop a->c->b | cases | median closure px | closure <= estimates | "
               "mean offset a->b px | a->c plus c->b px |"), "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for setting, (offsets, closures) in results.items():
        mean = {(o.tile, o.group): np.array([o.x_px, o.y_px]) for o in offsets}
        for c in closures:
            a, via, b = c.loop.split("->")
            direct, composed = mean[c.tile, f"{a}->{b}"], mean[c.tile, f"{a}->{via}"] + mean[c.tile, f"{via}->{b}"]
            lines.append(f"| {setting} | {c.tile} | {c.loop} | {c.cases} | {c.median_px:.2f} | "
                         f"{share_text(c.within_estimate)} | "
                         f"({direct[0]:+.2f}, {direct[1]:+.2f}) | ({composed[0]:+.2f}, {composed[1]:+.2f}) |")
    return [*lines, ""]


def share_text(value: float | None) -> str:
    """A share as a whole percentage; "-" where there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.0%}"


def plot_calibration(rows: list[dict], keys: list[str], path: Path) -> Path:
    """Estimated CE90 against the true error of every accepted case, one colour per setting."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    top = 0.1
    for key in keys:
        pairs = np.array([(float(r["estimated_ce90_px"]), float(r["error_px"])) for r in _rows_of(rows, key)
                          if r.get("accepted") == "True" and r.get("estimated_ce90_px") not in ("", None)
                          and has_error(r)])
        if len(pairs):
            ax.scatter(*pairs.T, s=10, label=key)
            top = max(top, float(np.nanmax(pairs[np.isfinite(pairs)])))
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="true = estimate")
    ax.set(xlabel="estimated CE90 at the corners, px", ylabel="true error at the corners, px", xscale="log",
           yscale="log", title="calibration: below the line,\nthe estimate covers the error")
    return _save(fig, ax, path, 7)


def write_markdown(summary: dict, path: Path, command: str, images: list[str], extra: list[str] = ()) -> Path:
    """The report: one table per season of settings, the threshold sweep, the plots, ``extra`` sections."""
    entries = summary["settings"]
    head = ["setting", "cases"] + [f"< {t:g} px" for t in THRESHOLDS_PX] + [
        "median px", "median m", "p90 px", f"AUC@{CDF_MAX_PX:g}px", "accepted", "accepted < 1 px", "refused",
        f"**wrong but accepted** (> {WRONG_PX:g} px)", "true error <= estimate", "median estimate px",
        "median inliers", "inlier ratio", "s/pair"]
    lines = [
        "# georef benchmark",
        "",
        f"Command: `{command}`",
        "",
        "Error: mean distance between the output's and the truth's map positions of the target's four corners, "
        "in target pixels. *Wrong but accepted*: cases that pass the quality gate with a larger error than "
        f"{WRONG_PX:g} px - a tool that is wrong and confident is worse than one that refuses.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for key, e in entries.items():
        cells = [key, str(e["cases"])] + [f"{e[f'within_{t:g}px']:.0%}" for t in THRESHOLDS_PX] + [
            f"{e['median_px']:.2f}", f"{e.get('median_m', float('nan')):.1f}", f"{e['p90_px']:.2f}",
            f"{e[f'auc_{CDF_MAX_PX:g}px']:.3f}",
            f"{e['accepted']}", share_text(e.get("accepted_within_1px")), f"{e['refused']}",
            f"**{e['wrong_but_accepted']}**",
            share_text(e.get("within_estimate")), f"{e.get('median_estimate_px', float('nan')):.2f}",
            f"{e['median_inliers']:.0f}", f"{e['median_inlier_ratio']:.2f}", f"{e['median_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *extra, *[f"![{name}]({name})" for name in images], ""]
    path.write_text("\n".join(lines))
    return path


def write_report(summary: dict, rows: list[dict], cases: list[Case], out_dir: Path, command: str,
                 show: list[str] | None = None, default_threshold: float | None = None) -> Path:
    """Plots (error CDF, threshold sweep, match views) and ``report.md`` in ``out_dir``.

    Args:
        summary, rows: what :func:`georef.benchmark.run.run_benchmark` produced.
        cases: the cases, for the match views.
        out_dir: the benchmark's folder.
        command: the command line, quoted in the report.
        show: case names to draw; default the two worst and two best of the first setting.
        default_threshold: the settings at this threshold make the CDF; others form the sweep.
    """
    settings = summary["settings"]
    ours = {k: e for k, e in settings.items() if e["matcher"] not in PEERS}
    main = [k for k, e in settings.items()
            if default_threshold is None or e["threshold"] == default_threshold or e["matcher"] in PEERS]
    images = [plot_cdf(rows, main, out_dir / "cdf.png").name, plot_calibration(rows, main, out_dir / "calibration.png").name]
    if len({e["threshold"] for e in ours.values()}) > 1:
        images.append(plot_sweep({"settings": ours}, out_dir / "sweep.png").name)
    first = _rows_of(rows, main[0]) if main else []
    if show is None:
        scored = sorted((r for r in first if has_error(r)),
                        key=lambda r: float(r["error_px"]))
        show = [r["case"] for r in scored[-2:][::-1] + scored[:2]]
    by_name = {c.name: c for c in cases}
    views = []
    for r in first:
        if r["case"] in show and r["case"] in by_name:
            path = case_paths(out_dir, r["matcher"], r["model"], float(r["threshold"]), r["case"])[1]
            if path.exists() and json.loads(path.read_text()).get("alignment"):  # no view of a run that found none
                views.append((by_name[r["case"]], path))
    if views:
        images.append(plot_matches([c for c, _ in views], [p for _, p in views], out_dir / "matches.png").name)
    extra = [*path_lines(settings, main), *peer_lines(rows, settings, main), *tile_lines(rows, cases, main),
             *consistency_lines(rows, cases, main)]
    return write_markdown(summary, out_dir / "report.md", command, images, extra)


def path_lines(settings: dict, main: list[str]) -> list[str]:
    """The report's section on the two paths: how many cases took the correlation-first path or the
    matcher, and the median time of each (the median over all cases mixes the two)."""
    shown = [k for k in main if settings[k].get("correlation_cases")]
    if not shown:
        return []
    lines = ["## Paths", "", "How each case found the offset: one correlation (no matcher) or the feature matcher.", "",
             "| setting | correlation path | its s/pair | matcher | its s/pair |", "| --- | --- | --- | --- | --- |"]
    for k in shown:
        e = settings[k]
        cells = [str(e["correlation_cases"]), f"{e['correlation_median_s']:.2f}", str(e["keypoints_cases"]),
                 f"{e['keypoints_median_s']:.2f}" if e["keypoints_cases"] else "-"]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def peer_lines(rows: list[dict], settings: dict, main: list[str]) -> list[str]:
    """The report's side-by-side section: per season pair, the cases that both georef and a peer accepted."""
    peers = sorted({(e["matcher"], e["model"], f"{e['threshold']:g}") for e in settings.values()
                    if e["matcher"] in PEERS})
    ours = next(((e["matcher"], e["model"], f"{e['threshold']:g}") for k, e in settings.items()
                 if k in main and e["matcher"] not in PEERS), None)
    if not peers or ours is None:
        return []
    lines = ["## Side by side", "",
             f"Cases that both {'/'.join(ours)} and the peer accepted: median error of each, and how often georef "
             "is closer to the truth.", "",
             "| peer | season pair | cases both accept | georef median px | peer median px | georef closer |",
             "| --- | --- | --- | --- | --- | --- |"]
    for peer in peers:
        for group in sorted({r["group"] for r in rows}):
            p = paired(rows, ours, peer, group)
            if p is not None:
                lines.append(f"| {'/'.join(peer[:2])} | {group} | {p['cases']} | {p['median_ours_px']:.2f} | "
                             f"{p['median_peer_px']:.2f} | {p['ours_closer']:.0%} |")
    return [*lines, ""]

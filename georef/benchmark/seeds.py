"""Several draws of one benchmark: each seed's cases run in a folder of their own, their rows pooled.

Thirty cases put a share within 1 px to a few points (one case is 3.3 points), and a change between two
runs of other seeds can be the draw alone. Each seed's run is an ordinary benchmark folder
(``OUT/seed-N``, with its own report, and resumed like one); ``OUT/seeds.md`` and ``OUT/seeds.json``
give the share of every seed beside the shares pooled over all of them, and each file's offset from the
truth over the seeds (how far its content is from the truth, and how well the method repeats it), and
``cdf.png`` and ``calibration.png`` plot every seed's cases together.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from georef.benchmark.cases import Case, CaseSpec, build_cases
from georef.benchmark.consistency import file_offsets, split_name
from georef.benchmark.layout import row_key, setting_key
from georef.benchmark.metrics import THRESHOLDS_PX, WRONG_PX, summarise_rows
from georef.benchmark.report import plot_calibration, plot_cdf, share_text
from georef.benchmark.run import Settings, run_and_report


def seed_folder(out_dir: str | Path, seed: int) -> Path:
    """Where the run of one seed lives."""
    return Path(out_dir) / f"seed-{seed}"


def run_seeds(pairs: str | Path, out_dir: str | Path, seeds: list[int], spec: CaseSpec | None = None,
              settings: Settings = Settings()) -> dict:
    """Run the benchmark once per seed (cases drawn and RANSAC seeded with it) and pool the results.

    Returns:
        The pooled summary (see :func:`pool`), also written to ``seeds.json`` and ``seeds.md``.
    """
    out_dir = Path(out_dir)
    spec = spec or CaseSpec()
    scored, cases = {}, {}
    for seed in seeds:
        folder = seed_folder(out_dir, seed)
        cases[seed] = build_cases(pairs, folder / "cases", replace(spec, seed=seed))
        seeded = replace(settings, options=replace(settings.options, seed=seed),
                         command=f"{settings.command} (seed {seed})")
        _, scored[seed] = run_and_report(cases[seed], folder, seeded)
    pooled = pool(scored)
    pooled["files"] = pool_files(scored, cases)
    (out_dir / "seeds.json").write_text(json.dumps(pooled, indent=1))
    every = [r for rows in scored.values() for r in rows]
    keys = list(pooled["settings"])
    images = [plot_cdf(every, keys, out_dir / "cdf.png").name,
              plot_calibration(every, keys, out_dir / "calibration.png").name]
    write_markdown(pooled, out_dir / "seeds.md", settings.command, images)
    return pooled


def pool(scored: dict[int, list[dict]]) -> dict:
    """Shares per seed and pooled, per setting and group.

    Args:
        scored: per seed, the ``cases.csv`` rows with a true error.

    Returns:
        ``{"seeds": [...], "settings": {key: entry}}``; an entry is :func:`summarise_rows` over every seed's
        rows, plus ``per_seed`` (seed -> share of its cases accepted within 1 px) and ``per_tile`` (tile ->
        the same, pooled; where the cases hold several tiles).
    """
    by_key: dict[str, dict[int, list[dict]]] = {}
    for seed, rows in scored.items():
        for r in rows:
            by_key.setdefault(row_key(r["matcher"], r["model"], r["threshold"], r["group"]), {}).setdefault(
                seed, []).append(r)
    settings = {}
    for key, mine in by_key.items():
        everything = [r for rows in mine.values() for r in rows]
        entry = summarise_rows(everything)
        entry["per_seed"] = {str(seed): summarise_rows(rows)["accepted_within_1px"] for seed, rows in mine.items()}
        tiles = sorted({split_name(r["case"])[0] for r in everything})
        if len(tiles) > 1:
            entry["per_tile"] = {tile: summarise_rows([r for r in everything if split_name(r["case"])[0] == tile])
                                 ["accepted_within_1px"] for tile in tiles}
        settings[key] = entry
    return {"seeds": list(scored), "settings": settings}


def pool_files(scored: dict[int, list[dict]], cases: dict[int, list[Case]]) -> dict[str, list[dict]]:
    """Per setting (``matcher/model/threshold``), each file's offset over the seeds (see
    :func:`georef.benchmark.consistency.file_offsets`); empty where fewer than two seeds ran."""
    if len(scored) < 2:
        return {}
    settings = sorted({setting_key(r) for rows in scored.values() for r in rows})
    return {s: [asdict(o) for o in file_offsets([([r for r in scored[seed] if setting_key(r) == s], cases[seed])
                                                 for seed in scored])] for s in settings}


def file_lines(files: dict[str, list[dict]]) -> list[str]:
    """The ``By file`` section of ``seeds.md``; empty where no file ran under several seeds."""
    rows = [(s, o) for s, found in files.items() for o in found if o["cases"] > 1]
    if not rows:
        return []
    lines = [
        "## By file",
        "",
        "Each file's accepted estimates at the target's centre: their mean offset from the truth over the seeds "
        "(pixels, x east, y south) and their RMS distance from it. Each seed moves the target differently; "
        "an offset that every draw repeats within a few hundredths of a pixel is what the file's content says, "
        "and where it is far from the truth, the truth is not the content's (docs/benchmarks.md, *The data's "
        "floor*). A spread of a tenth of a pixel or more is the method's noise.",
        "",
        "| setting | file | season pair | accepted | offset x px | offset y px | offset px | spread px |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting, o in rows:
        x, y = np.round([o["x_px"], o["y_px"]], 2) + 0.0  # no "-0.00"
        lines.append(f"| {setting} | {o['tile']} | {o['group']} | {o['cases']} | {x:+.2f} | {y:+.2f} | "
                     f"{np.hypot(o['x_px'], o['y_px']):.2f} | {o['spread_px']:.2f} |")
    return [*lines, ""]


def write_markdown(pooled: dict, path: Path, command: str, images: list[str] = ()) -> Path:
    """``seeds.md``: per setting, the share of each seed and the pooled shares; each file's offset over the
    seeds (:func:`file_lines`); then ``images``."""
    seeds = " / ".join(str(s) for s in pooled["seeds"])
    tiles = sorted({t for e in pooled["settings"].values() for t in e.get("per_tile", {})})
    head = ["setting", "cases", f"accepted < 1 px, seeds {seeds}"] + [f"< {t:g} px" for t in THRESHOLDS_PX[:3]] + [
        "median px", "p90 px", "accepted < 1 px", "refused", f"**wrong but accepted** (> {WRONG_PX:g} px)",
        "true error <= estimate"] + ([f"accepted < 1 px, {' / '.join(tiles)}"] if tiles else [])
    lines = [
        f"# georef benchmark, seeds {seeds}",
        "",
        f"Command: `{command}`",
        "",
        "Each seed draws other cases and is run in `seed-N/`, whose `report.md` has every column and section. "
        "The shares below pool the cases of all seeds; the third column gives each seed's own share of cases "
        "accepted within 1 px.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for key, e in pooled["settings"].items():
        cells = [key, str(e["cases"]), " / ".join(share_text(v) for v in e["per_seed"].values())]
        cells += [share_text(e[f"within_{t:g}px"]) for t in THRESHOLDS_PX[:3]]
        cells += [f"{e['median_px']:.2f}", f"{e['p90_px']:.2f}", share_text(e["accepted_within_1px"]), str(e["refused"]),
                  f"**{e['wrong_but_accepted']}**", share_text(e.get("within_estimate"))]
        if tiles:
            cells.append(" / ".join(share_text(e.get("per_tile", {}).get(t)) for t in tiles))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *file_lines(pooled.get("files", {})), *[f"![{name}]({name})" for name in images]]
    path.write_text("\n".join([*lines, ""]))
    return path

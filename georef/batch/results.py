"""A batch's results: the manifest written as pairs finish, the footprints, and the summary.

``results.csv`` has one row per pair: paths, status, the reason of a failure, the
matcher, model and path taken, inliers, estimated accuracy (CE90), how far the
target moved, the time and the worker; footprints before and after as WKT in
the pair's CRS (column ``crs``); and the pair's own columns (a table's, a STAC item's id and
date). ``footprints.gpkg`` holds the same attributes on two layers, ``before``
and ``after``; ``report.md`` and ``report.png`` summarise the batch.
"""

from __future__ import annotations

import csv
import logging
import os
import resource
from pathlib import Path

import numpy as np

from georef import geometry
from georef.errors import GeorefError
from georef.files import atomic_path

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
#: Columns of ``results.csv`` (a pair's own columns follow).
COLUMNS = ("target", "reference", "output", "report", "status", "exit_code", "reason", "matcher", "model", "path",
           "inliers", "ce90_px", "ce90_m", "shift_m", "seconds", "worker", "peak_rss_mb", "key", "crs",
           "footprint_before", "footprint_after")
#: Statuses of a pair: aligned, or why not (the gate refused it, nothing matched, its input is bad, a bug).
STATUSES = ("aligned", "refused", "failed", "bad input", "error")


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (VmHWM: unlike ru_maxrss, not inherited from a parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def pair_row(job) -> dict:
    """The columns of a pair known before it runs."""
    return {"target": job.pair.target, "reference": job.pair.reference, "output": job.output, "report": job.report,
            "key": job.key, **job.pair.extra}


def _polygon(corners: np.ndarray) -> str:
    return "POLYGON ((" + ", ".join(f"{x:.3f} {y:.3f}" for x, y in [*corners, corners[0]]) + "))"


def _claimed_footprint(target: str, product_bands: str, crs) -> str:
    """The target's own footprint in ``crs``, where it has a georeference; else empty."""
    from georef import inputs, raster

    try:
        with inputs.ResolvedInput(target, product_bands) as path, raster.open_raster(path) as ds:
            if not raster.is_georeferenced(ds):
                return ""
            claimed = raster.footprint_in(raster.georeference(ds, assume_crs=crs), ds.width, ds.height, crs)
            ring = geometry.apply(claimed, geometry.outline(ds.width, ds.height, 8))
    except GeorefError:  # the footprint is a courtesy: a pair's result never depends on it
        log.debug("no claimed footprint for %s", target, exc_info=True)
        return ""
    return _polygon(ring)


def alignment_columns(alignment, target: str, product_bands: str = "TCI") -> dict:
    """The columns an alignment (passed or refused) fills."""
    q, a = alignment.quality, alignment.accuracy
    after = alignment.predict(geometry.outline(alignment.width, alignment.height, 8))
    epsg = alignment.crs.to_epsg()
    return {
        "matcher": alignment.matcher, "model": alignment.model, "path": alignment.path, "inliers": q.inliers,
        "ce90_px": "" if a is None else round(a.ce90_px, 4), "ce90_m": "" if a is None else round(a.ce90_m, 3),
        "shift_m": round(q.shift_m, 3), "crs": f"EPSG:{epsg}" if epsg else alignment.crs_wkt,
        "footprint_before": _claimed_footprint(target, product_bands, alignment.crs),
        "footprint_after": _polygon(after),
    }


class Manifest:
    """``results.csv``, appended a row at a time as pairs finish, so that nothing finished is lost.

    Args:
        path: the CSV.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = list(COLUMNS)

    def load(self) -> dict[str, dict]:
        """Rows of an earlier run by key (every recorded row is a finished pair); none without the file."""
        if not self.path.is_file():
            return {}
        with open(self.path, newline="") as f:
            return {row["key"]: row for row in csv.DictReader(f) if row.get("key")}

    def start(self, keep: dict[str, dict], extra_columns: list[str] = ()) -> None:
        """Begin the file with the rows kept from an earlier run."""
        self.columns = list(COLUMNS) + [c for c in extra_columns if c not in COLUMNS]
        for row in keep.values():
            self.columns += [c for c in row if c not in self.columns]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(keep.values())

    def append(self, row: dict) -> None:
        """Add one finished pair, on disk at once."""
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
            f.flush()
            os.fsync(f.fileno())

    def finish(self, order: list[str]):
        """Rewrite the file in the pairs' order, one row per pair; return it as a DataFrame."""
        import pandas as pd

        rows = self.load()  # strings, as written: the appended rows and the kept ones alike
        table = pd.DataFrame([rows[key] for key in order if key in rows], columns=self.columns).fillna("")
        with atomic_path(self.path) as tmp:
            table.to_csv(tmp, index=False)
        return _typed(table)


def _typed(table):
    import pandas as pd

    for column in ("exit_code", "inliers", "ce90_px", "ce90_m", "shift_m", "seconds", "peak_rss_mb"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def footprints(table):
    """(before, after) GeoDataFrames of the table's footprints, in the first pair's CRS."""
    import geopandas as gpd
    from shapely import wkt

    attributes = table.drop(columns=["footprint_before", "footprint_after"])
    layers = []
    for column in ("footprint_before", "footprint_after"):
        parts = [gpd.GeoDataFrame(attributes.loc[group.index], geometry=[wkt.loads(v) for v in group[column]], crs=crs)
                 for crs, group in table[table[column] != ""].groupby("crs", sort=False)]
        if not parts:
            layers.append(gpd.GeoDataFrame(attributes.iloc[:0], geometry=[]))
            continue
        layers.append(gpd.GeoDataFrame(gpd.pd.concat([p.to_crs(parts[0].crs) for p in parts]), crs=parts[0].crs))
    return layers[0], layers[1]


def write_summary(table, out_dir: Path, seconds: float, ran: int) -> None:
    """``footprints.gpkg``, ``report.md`` and ``report.png`` of a finished batch."""
    before, after = footprints(table)
    if len(after):
        with atomic_path(out_dir / "footprints.gpkg") as tmp:
            after.to_file(tmp, layer="after", driver="GPKG")
            if len(before):
                before.to_file(tmp, layer="before", driver="GPKG", mode="a")
    _plot(table, before, after, out_dir / "report.png")
    counts = table["status"].value_counts()
    aligned = table[table["status"] == "aligned"]
    lines = ["# Batch report", "",
             f"{len(table)} pairs: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0)),
             ""]
    if ran and seconds:
        workers = table.groupby("worker")["peak_rss_mb"].max()
        lines += [f"This run: {ran} pairs in {seconds:.1f} s ({ran / seconds * 60:.1f} pairs/min) on "
                  f"{len(workers)} workers; median {table['seconds'].median():.2f} s per pair; peak RSS per worker "
                  f"{workers.min():.0f}-{workers.max():.0f} MB.", ""]
    if len(aligned):
        lines += [f"Aligned: estimated CE90 median {aligned['ce90_m'].median():.1f} m, moved median "
                  f"{aligned['shift_m'].median():.1f} m (max {aligned['shift_m'].max():.1f} m).", ""]
    failed = table[table["status"] != "aligned"]
    if len(failed):
        lines += ["| target | status | reason |", "| --- | --- | --- |"]
        lines += [f"| {r.target} | {r.status} | {r.reason} |" for r in failed.itertuples()]
        lines.append("")
    lines += ["![shifts and accuracies](report.png)", ""]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines))


def _plot(table, before, after, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for geometry_ in after.geometry:
        left.plot(*geometry_.exterior.xy, color="0.6", lw=0.8)
    moved = after[after.index.isin(before.index)]
    if len(moved):
        start = before.loc[moved.index].geometry.centroid
        end = moved.geometry.centroid
        extent = max(np.ptp(after.total_bounds[[0, 2]]), np.ptp(after.total_bounds[[1, 3]]), 1.0)
        shifts = np.hypot(end.x.values - start.x.values, end.y.values - start.y.values)
        scale = 0.1 * extent / max(float(shifts.max()), 1e-9)  # the longest arrow a tenth of the extent
        left.quiver(start.x, start.y, (end.x.values - start.x.values) * scale, (end.y.values - start.y.values) * scale,
                    angles="xy", scale_units="xy", scale=1, color="tab:red", width=0.004)
        left.set_title(f"footprints and shifts (arrows x{scale:.0f}; longest {shifts.max():.0f} m)")
    left.set_aspect("equal")
    values = table.loc[table["status"] == "aligned", "ce90_m"].dropna()
    right.hist(values, bins=20, color="tab:blue")
    right.set_xlabel("estimated CE90, m")
    right.set_ylabel("pairs")
    right.set_title(f"accuracy of {len(values)} aligned pairs")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

"""Season consistency: how far the benchmark's truth itself is from the data.

The s2-seasons truth assumes that all seasons of a file share one pixel grid. Where
the benchmark ran the three season pairs of a triangle (a->b, a->c and c->b) the
estimates can be checked against each other without any truth: if each is right,
the a->b error is the a->c error followed by the c->b error (loop closure). Where
the closure is small but the errors are not, the offset is in the data; no method
can score below it against that truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from georef import geometry
from georef.benchmark.cases import Case


@dataclass
class SeasonOffset:
    """Mean error of one setting at the targets' centres, over one tile's cases of a season pair (or over
    one file's cases of several draws, see :func:`file_offsets`).

    Attributes:
        tile: the tile (or ``TILE/FILE``).
        group: the season pair, ``target->reference``.
        cases: cases averaged.
        x_px, y_px: mean offset in pixels like ``error_px`` (x east, y south on a north-up grid).
        spread_px: RMS distance of the offsets from their mean, pixels.
    """

    tile: str
    group: str
    cases: int
    x_px: float
    y_px: float
    spread_px: float


@dataclass
class LoopClosure:
    """Agreement of one setting's estimates around a season triangle, over one tile's files.

    Attributes:
        tile: the tile.
        loop: ``a->c->b``, compared with ``a->b``.
        cases: files with all three estimates.
        median_px: median closure, mean distance at the target's corners in pixels like ``error_px``.
        within_estimate: share of the files, where all three carry an estimated CE90, whose closure is at
            most the three estimates added in quadrature (NaN where none does). The closure sums three
            independent errors, so calibrated estimates hold it in about 90 % of files, with no truth
            involved; what each scene shares with both its pairs (its own offset in the data, or a bias
            of the method on it) cancels in the loop and is not judged.
    """

    tile: str
    loop: str
    cases: int
    median_px: float
    within_estimate: float = float("nan")


def parse_estimate(text: str) -> np.ndarray:
    """The (3, 3) matrix of a ``cases.csv`` estimate (six affine coefficients, rasterio order)."""
    a, b, c, d, e, f = (float(v) for v in text.split())
    return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])


def split_name(name: str) -> tuple[str, str, str]:
    """(tile, file, group) of an s2-seasons case name ``TILE/FILE:TARGET->REFERENCE`` (or of ``TILE/FILE``)."""
    place, _, group = name.partition(":")
    tile, _, _ = place.partition("/")
    return tile, place, group


def map_error(row: dict, case: Case) -> np.ndarray:
    """(3, 3) map -> map error of a row's estimate: the estimate after the inverse of the case's truth."""
    return parse_estimate(row["estimate"]) @ np.linalg.inv(case.truth)


def centre_offset(error: np.ndarray, case: Case) -> np.ndarray:
    """(2,) a :func:`map_error` at the case's target centre, pixels like ``error_px`` (x east, y south on a
    north-up grid)."""
    centre = geometry.apply(case.truth, np.array([[case.width / 2, case.height / 2]]))
    east, north = (geometry.apply(error, centre) - centre)[0] / case.metres_per_px
    return np.array([east, -north])


def _mean_offsets(offsets: dict[tuple[str, str], list[np.ndarray]]) -> list[SeasonOffset]:
    """Each (place, group)'s offsets as their mean and their RMS distance from it."""
    found = []
    for (place, group), values in sorted(offsets.items()):
        v = np.array(values)
        spread = float(np.sqrt(np.mean(np.sum((v - v.mean(axis=0)) ** 2, axis=1))))
        found.append(SeasonOffset(place, group, len(v), *map(float, v.mean(axis=0)), spread))
    return found


def file_offsets(draws: list[tuple[list[dict], list[Case]]]) -> list[SeasonOffset]:
    """Per file and season pair, the offset at the target's centre of one setting's accepted estimates over
    several draws of cases (seeds), and their spread about it.

    Each draw moves the target differently. A file whose answers repeat to a few hundredths of a pixel over
    the draws shows what its content says: where that is far from the truth, the truth is not the
    content's, and a spread of a tenth of a pixel or more is the method's noise.

    Args:
        draws: per draw, the ``cases.csv`` rows of one setting and the cases they ran (names repeat across
            draws, truths do not).

    Returns:
        One offset per file and season pair, ``tile`` holding ``TILE/FILE``.
    """
    offsets: dict[tuple[str, str], list[np.ndarray]] = {}
    for rows, cases in draws:
        by_name = {c.name: c for c in cases}
        for row in rows:
            case = by_name.get(row["case"])
            if case is None or case.truth is None or not row.get("estimate") or row.get("accepted") != "True":
                continue
            _, place, group = split_name(case.name)
            offsets.setdefault((place, group), []).append(centre_offset(map_error(row, case), case))
    return _mean_offsets(offsets)


def season_consistency(rows: list[dict], cases: list[Case]) -> tuple[list[SeasonOffset], list[LoopClosure]]:
    """Per-tile offsets and loop closures of one setting's rows.

    Args:
        rows: ``cases.csv`` rows of one setting (matcher, model, threshold), with estimates.
        cases: the cases, for their truths.

    Returns:
        Offsets per tile and season pair, and closures per tile and season triangle
        (empty where no triangle was run).
    """
    by_name = {c.name: c for c in cases}
    # (file, group) -> map -> map error, its case, its estimated CE90 in pixels (NaN where none)
    errors: dict[tuple[str, str], tuple[np.ndarray, Case, float]] = {}
    offsets: dict[tuple[str, str], list[np.ndarray]] = {}
    for row in rows:
        case = by_name.get(row["case"])
        if case is None or case.truth is None or not row.get("estimate"):
            continue
        tile, place, group = split_name(case.name)
        error = map_error(row, case)
        errors[place, group] = error, case, float(row.get("estimated_ce90_px") or "nan")
        offsets.setdefault((tile, group), []).append(centre_offset(error, case))
    season_offsets = _mean_offsets(offsets)
    closures: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (tile, loop) -> (closure, bound) per file
    for place in sorted({place for place, _ in errors}):
        seasons = {s for p, g in errors if p == place for s in g.split("->")}
        for a, c, b in permutations(sorted(seasons), 3):
            keys = [(place, f"{a}->{b}"), (place, f"{a}->{c}"), (place, f"{c}->{b}")]
            if not all(k in errors for k in keys):
                continue
            (direct, case, *_), (first, *_), (second, *_) = (errors[k] for k in keys)
            gap = geometry.mean_corner_distance(direct @ case.truth, second @ first @ case.truth, case.width,
                                                case.height)
            bound = float(np.sqrt(sum(errors[k][2] ** 2 for k in keys)))
            closures.setdefault((split_name(place)[0], f"{a}->{c}->{b}"), []).append((gap / case.metres_per_px, bound))
    loop_closures = []
    for (tile, loop), values in sorted(closures.items()):
        gaps, bounds = np.array(values).T
        judged = np.isfinite(bounds)
        within = float(np.mean(gaps[judged] <= bounds[judged])) if judged.any() else float("nan")
        loop_closures.append(LoopClosure(tile, loop, len(gaps), float(np.median(gaps)), within))
    return season_offsets, loop_closures

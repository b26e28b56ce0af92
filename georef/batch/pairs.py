"""The pairs of a batch: a table, a time series against one reference, or a STAC collection.

Every source gives :class:`Pair` objects; paths in a file are taken relative to
that file unless absolute. Remote paths (``https://``, ``s3://``, GDAL's
``/vsi...``) are passed to GDAL as ``georef align`` would read them.
"""

from __future__ import annotations

import csv
import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from georef.errors import BatchInputError, one_line
from georef.inputs import is_product
from georef.raster import ExclusionMask

#: Raster files a folder of targets is searched for (``.SAFE`` folders and zips too).
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".png", ".jpg")
_REMOTE = re.compile(r"^(/vsi\w+/|[a-z][a-z0-9+.-]*://)", re.IGNORECASE)
#: Columns of a table that give a pair's own masks.
MASK_COLUMNS = ("mask_target", "mask_ref")


@dataclass(frozen=True)
class Pair:
    """One alignment of a batch.

    Attributes:
        target, reference: what ``georef align`` takes (a raster, a ``.SAFE`` product,
            band files joined by commas, a GDAL path).
        output: the raster to write; None: one named after the target in the batch's folder.
        extra: other columns of the input (a STAC item's id and date, a table's own
            columns), carried to the results.
        mask_target, mask_ref: this pair's exclusion masks (``PATH[:values]``, as ``--mask-target``
            takes them); None: the batch's own, if any.
    """

    target: str
    reference: str
    output: str | None = None
    extra: dict = field(default_factory=dict, compare=False)
    mask_target: str | None = None
    mask_ref: str | None = None


def gdal_path(href: str) -> str:
    """A STAC or table href as GDAL opens it: URLs through ``/vsicurl/`` or ``/vsis3/``."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


def _resolve(value: str, folder: Path) -> str:
    """A path of a file in ``folder``'s terms: relative paths (each of a comma-joined band list) joined to it."""
    parts = [p.strip() for p in value.split(",")]
    return ",".join(p if _REMOTE.match(p) or Path(p).is_absolute() else str(folder / p) for p in parts)


def _resolve_mask(value: str, folder: Path) -> str:
    """A mask ``PATH[:values]`` of a file in ``folder``'s terms (the values, commas and all, kept as they are)."""
    path, values = ExclusionMask.split(value)
    return ExclusionMask.spec(_resolve(path, folder), values)


def read_table(path: str | Path) -> list[Pair]:
    """Pairs from a CSV or TSV with a header: ``target,reference[,output][,mask_target][,mask_ref]`` and any
    other columns.

    Raises:
        BatchInputError: no such file, no header with target and reference, an empty cell, no rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})", path) from None
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") or "\t" in text.split("\n", 1)[0] else ","
    rows = csv.DictReader(text.splitlines(), delimiter=delimiter)
    missing = {"target", "reference"} - set(rows.fieldnames or [])
    if missing:
        raise BatchInputError(f"has no {' and no '.join(sorted(missing))} column (header: "
                              f"{delimiter.join(rows.fieldnames or []) or 'none'})", path)
    pairs = []
    for line, row in enumerate(rows, start=2):
        if not any((v or "").strip() for v in row.values()):
            continue
        for column in ("target", "reference"):
            if not (row.get(column) or "").strip():
                raise BatchInputError(f"line {line}: no {column}", path)
        output, masks = (row.get("output") or "").strip(), [(row.get(k) or "").strip() for k in MASK_COLUMNS]
        extra = {k: v for k, v in row.items() if k not in ("target", "reference", "output", *MASK_COLUMNS)
                 and k is not None}
        pairs.append(Pair(_resolve(row["target"].strip(), path.parent), _resolve(row["reference"].strip(), path.parent),
                          _resolve(output, path.parent) if output else None, extra,
                          *(_resolve_mask(m, path.parent) if m else None for m in masks)))
    if not pairs:
        raise BatchInputError("lists no pairs", path)
    return pairs


def _targets(spec: str) -> list[str]:
    path = Path(spec)
    if any(c in spec for c in "*?["):
        found = sorted(glob.glob(spec, recursive=True))
        if not found:
            raise BatchInputError(f"matches no file ({spec!r})", path.parent if str(path.parent) else ".")
        return found
    if path.is_dir() and not is_product(path):
        found = sorted(str(p) for p in path.iterdir()
                       if p.suffix.lower() in RASTER_SUFFIXES or is_product(p))
        if not found:
            raise BatchInputError(f"holds no raster ({', '.join(RASTER_SUFFIXES)}) and no .SAFE product", path)
        return found
    if path.is_file() and path.suffix.lower() in (".txt", ".lst"):
        lines = [line.strip() for line in path.read_text().splitlines()]
        found = [_resolve(line, path.parent) for line in lines if line and not line.startswith("#")]
        if not found:
            raise BatchInputError("lists no target", path)
        return found
    if path.exists() or _REMOTE.match(spec):
        return [spec]
    raise BatchInputError("does not exist (give a glob, a folder, or a .txt list of targets)", path)


def series(targets: str, reference: str) -> list[Pair]:
    """A time series against one reference.

    Args:
        targets: a glob (``scenes/*.jp2``), a folder (its rasters and ``.SAFE`` products),
            or a ``.txt`` file of paths (one per line, ``#`` comments).
        reference: the reference of every pair.
    """
    return [Pair(target, reference) for target in _targets(targets) if Path(target) != Path(reference)]


def stac_pairs(source: str | Path, asset: str, reference: str | None = None, reference_item: str | None = None,
               mask_asset: str | None = None) -> list[Pair]:
    """Pairs from a local STAC ItemCollection or Catalog: each item's ``asset`` against one reference.

    Args:
        source: the ItemCollection or Catalog JSON.
        asset: the asset key of the image (e.g. ``visual``).
        reference: the reference raster; or
        reference_item: the id of the item whose asset is the reference.
        mask_asset: ``KEY[:values]``: each item's asset ``KEY`` masks its image (``scl:3,8,9,10``,
            ``qa_pixel:bits=1,3,4``), the reference item's too.

    Raises:
        BatchInputError: unreadable STAC, no such item, an item without the asset.
    """
    import pystac

    source = Path(source)
    try:
        is_collection = json.loads(source.read_text()).get("type") == "FeatureCollection"
        stac = pystac.ItemCollection.from_file(str(source)) if is_collection else pystac.read_file(str(source))
    except Exception as exc:  # pystac raises many kinds (JSON, schema, missing links)
        raise BatchInputError(f"is not a readable STAC file ({one_line(exc, 200)})", source) from None
    if isinstance(stac, pystac.Item):
        items = [stac]
    elif isinstance(stac, pystac.ItemCollection):
        items = list(stac.items)
    elif isinstance(stac, pystac.Catalog):
        items = list(stac.get_items(recursive=True))
    else:
        raise BatchInputError(f"is a STAC {type(stac).__name__}, not an ItemCollection or Catalog", source)

    def href(item, key: str = asset) -> str:
        if key not in item.assets:
            raise BatchInputError(f"item {item.id} has no asset {key!r} (it has {', '.join(item.assets)})", source)
        # Items of an ItemCollection have no location of their own: relative hrefs are the file's.
        return gdal_path(_resolve(item.assets[key].get_absolute_href() or item.assets[key].href, source.parent))

    mask_key, colon, mask_values = (mask_asset or "").partition(":")

    def mask(item) -> str | None:
        return href(item, mask_key) + colon + mask_values if mask_asset else None

    if (reference is None) == (reference_item is None):
        raise BatchInputError("give the reference as a raster or as the id of one of its items", source)
    if reference_item is not None:
        matching = [item for item in items if item.id == reference_item]
        if not matching:
            raise BatchInputError(f"has no item {reference_item!r}", source)
        reference, reference_mask = href(matching[0]), mask(matching[0])
    else:
        reference_mask = None
    pairs = []
    for item in items:
        if item.id == reference_item:
            continue
        date = item.datetime.isoformat() if item.datetime else item.properties.get("start_datetime", "")
        pairs.append(Pair(href(item), str(reference), None, {"item": item.id, "datetime": date}, mask(item),
                          reference_mask))
    if not pairs:
        raise BatchInputError("holds no item besides the reference", source)
    return pairs

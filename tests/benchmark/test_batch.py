from georef.benchmark.batch import _split


def test_a_ways_time_splits_into_steady_per_pair_and_fixed():
    # 4 pairs finished 1 s apart after 5 s of start-up; 1 s of summary after the last.
    split = _split(9.0, [5.0, 6.0, 7.0, 8.0])
    assert split == {"steady_s_per_pair": 1.0, "fixed_s": 5.0}
    assert _split(2.0, [1.5]) == {"steady_s_per_pair": 2.0, "fixed_s": 0.0}

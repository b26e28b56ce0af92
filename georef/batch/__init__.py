"""Batches: many pairs aligned on Dask distributed, from a laptop to a cluster.

>>> from georef.batch import run, series
>>> table = run(series("scenes/*.jp2", "summer.jp2"), "out/")  # doctest: +SKIP

:func:`run` returns the results as a pandas DataFrame and writes them to
``out/results.csv`` as they arrive (see :mod:`georef.batch.engine`); the pairs
come from :func:`read_table`, :func:`series` or :func:`stac_pairs`.
"""

from georef.batch.engine import RETRIES, align_pair, run, start_client
from georef.batch.pairs import Pair, read_table, series, stac_pairs

__all__ = ["Pair", "RETRIES", "align_pair", "read_table", "run", "series", "stac_pairs", "start_client"]

import os
import subprocess
import sys

import pytest

from georef import allocator

PROBE = ("import os; from georef import allocator; "
         "print(allocator.configure(), os.environ.get(allocator.MMAP_THRESHOLD))")


def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_settings_reach_the_process_and_its_children():
    applied, mmap_threshold = _probe()
    assert applied == "True" and int(mmap_threshold) == allocator.SETTINGS[allocator.MMAP_THRESHOLD][1]


def test_a_user_who_tuned_the_allocator_keeps_the_whole_of_it():
    assert _probe(MALLOC_TOP_PAD_="0") == ["False", "None"]
    assert _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == ["False", "None"]

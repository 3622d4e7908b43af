"""glibc malloc settings of the input pipeline (keras_species.data.allocator)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from keras_species.data import allocator
from keras_species.data.allocator import OPT_OUT, user_chose_malloc


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except OSError:
        return False


def test_the_user_s_own_malloc_settings_win():
    assert user_chose_malloc({}) is None
    assert user_chose_malloc({OPT_OUT: ""}) is None
    assert user_chose_malloc({OPT_OUT: "tuned"}) is None
    for word in ("system", "0", "OFF", "false"):
        assert user_chose_malloc({OPT_OUT: word}) == f"{OPT_OUT}={word}"
    assert user_chose_malloc({"MALLOC_TRIM_THRESHOLD_": "0"}) == "MALLOC_TRIM_THRESHOLD_"
    assert user_chose_malloc({"MALLOC_ARENA_MAX": "2"}) == "MALLOC_ARENA_MAX"
    assert user_chose_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == "GLIBC_TUNABLES"
    assert user_chose_malloc({"GLIBC_TUNABLES": "glibc.rtld.nns=2"}) is None


_PROBE = """
import ctypes, importlib.util, sys
# the module alone, by its path: importing the package would start TensorFlow (seconds a probe)
spec = importlib.util.spec_from_file_location("allocator", sys.argv[1])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
tune_malloc = allocator.tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

first, again = tune_malloc(), tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblkhd
block = libc.malloc(4 << 20)  # 4 MiB, a batch of 32 images at 64 px in float32
mapped = libc.mallinfo2().hblkhd - before  # bytes in blocks mapped on their own
libc.free(block)
print(first, again, "mapped" if mapped >= 4 << 20 else "heap")
"""


def _probe(script: str = _PROBE, *args: str, **env) -> list[str]:
    """Run ``script`` in a fresh interpreter (the allocator module's path and ``args`` as its
    arguments), without the malloc settings of this one's environment plus ``env``; its printed
    words."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("MALLOC_") and k not in (OPT_OUT, "GLIBC_TUNABLES")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", script, allocator.__file__, *args], env=environ, capture_output=True,
                         text=True, check=True).stdout
    return out.split()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(), reason="glibc only")
def test_tune_malloc_serves_batch_sized_blocks_from_the_heap():
    # glibc's default maps a fresh 4 MiB block on its own (faulted in page by page, unmapped
    # when freed); tuned, it comes from the heap, where a freed block is reused
    assert _probe() == ["True", "True", "heap"]
    assert _probe(**{OPT_OUT: "system"}) == ["False", "False", "mapped"]
    assert _probe(MALLOC_TRIM_THRESHOLD_="131072") == ["False", "False", "mapped"]


_THREAD_PROBE = """
import ctypes, importlib.util, resource, sys, threading
spec = importlib.util.spec_from_file_location("allocator", sys.argv[1])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
allocator.tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
SIZE = int(sys.argv[2])  # a float32 batch: 19 MiB for 32 images at 224 px, 38.5 MB for 64
faults = []

def worker():  # a thread of its own: its blocks come from a per-thread arena (64 MiB heaps)
    # 4 blocks of 19 MiB: the fourth needs the arena's second heap, which empties when it is
    # freed; a block above 32 MiB after a 30 MiB one: the heap's top cannot hold it either
    sizes = [SIZE] * 4 if SIZE < 32 << 20 else [30 << 20, SIZE]
    blocks = [libc.malloc(size) for size in sizes]
    for block, size in zip(blocks, sizes):
        libc.memset(block, 1, size)
    libc.free(blocks[-1])  # that heap is empty now (or the block was mapped and is unmapped)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = libc.malloc(SIZE)
    libc.memset(again, 1, SIZE)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    for block in blocks[:-1] + [again]:
        libc.free(block)

thread = threading.Thread(target=worker)
thread.start()
thread.join()
print("fresh" if faults[0] > (SIZE >> 12) // 2 else "reused")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(), reason="glibc only")
def test_tune_malloc_keeps_an_emptied_per_thread_heap():
    # glibc unmaps a per-thread heap that empties, whatever the trim threshold: the next batch
    # would fault in every page again. The 64 MiB top pad keeps the heap and its pages.
    assert _probe(_THREAD_PROBE, str(19 << 20)) == ["reused"]
    assert _probe(_THREAD_PROBE, str(19 << 20), **{OPT_OUT: "system"}) == ["fresh"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(), reason="glibc only")
def test_tune_malloc_reuses_batches_above_the_largest_mmap_threshold():
    # a float32 batch of 64 images at 224 px (38.5 MB) is above glibc's largest mmap threshold
    # (32 MiB): mapped afresh every time unless blocks are never mapped on their own
    size = str(64 * 224 * 224 * 3 * 4)
    assert _probe(_THREAD_PROBE, size) == ["reused"]
    assert _probe(_THREAD_PROBE, size, **{OPT_OUT: "system"}) == ["fresh"]
    stop_18 = ("glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:"
               "glibc.malloc.top_pad=67108864")  # the settings before M_MMAP_MAX 0
    assert _probe(_THREAD_PROBE, size, GLIBC_TUNABLES=stop_18) == ["fresh"]


def test_tune_malloc_is_applied_by_the_pipeline(image_folder):
    from keras_species.data import allocator
    from keras_species.data.pipeline import make_dataset
    from keras_species.data.sources import from_folder

    make_dataset(from_folder(image_folder), 16, 4)
    assert "applied" in allocator._state

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


def _probe(script: str = _PROBE, **env) -> list[str]:
    """Run ``script`` in a fresh interpreter, without the malloc settings of this one's
    environment plus ``env``; its printed words."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("MALLOC_") and k not in (OPT_OUT, "GLIBC_TUNABLES")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", script, allocator.__file__], env=environ, capture_output=True,
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
SIZE = 19 << 20  # a float32 batch of 32 images at 224 px
faults = []

def worker():  # a thread of its own: its blocks come from a per-thread arena (64 MiB heaps)
    blocks = [libc.malloc(SIZE) for _ in range(4)]  # the fourth needs the arena's second heap
    for block in blocks:
        libc.memset(block, 1, SIZE)
    libc.free(blocks[3])  # that heap is empty now
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = libc.malloc(SIZE)
    libc.memset(again, 1, SIZE)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    for block in blocks[:3] + [again]:
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
    assert _probe(_THREAD_PROBE) == ["reused"]
    assert _probe(_THREAD_PROBE, **{OPT_OUT: "system"}) == ["fresh"]


def test_tune_malloc_is_applied_by_the_pipeline(image_folder):
    from keras_species.data import allocator
    from keras_species.data.pipeline import make_dataset
    from keras_species.data.sources import from_folder

    make_dataset(from_folder(image_folder), 16, 4)
    assert "applied" in allocator._state

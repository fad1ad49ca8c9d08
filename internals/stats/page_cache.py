"""Whether the pages of a memory-mapped file cost little to map into this process (Linux page-cache folios).

Counting a fresh memory map first maps the file's pages into the process's page tables. When the kernel
holds the file in small (4 KiB) folios, that costs about 0.07 s per GB on the development VM (the
fresh-process reduction of `bench_stats --page-cache as-found` over a just-written checkpoint), more than
reading the file with `pread` into a cache-sized buffer costs beyond the counting, so the statistics engine
reads such a file. When the kernel holds it in 2 MiB folios (what ext4 and XFS on recent kernels make when
they read a file from disk), one fault maps 2 MiB, the map costs next to nothing, and `pread` would only add
a copy of every byte: then the engine counts the map. `maps_cheaply` tells the two apart: it touches a few
2 MiB-aligned bytes of the array and asks the kernel how much of that mapping it mapped with 2 MiB entries
(`FilePmdMapped` in /proc/self/smaps). Anywhere that cannot be told (not Linux, an old kernel, a small
array), the answer is False and nothing changes.
"""

from __future__ import annotations

import numpy as np

#: Bytes one page-middle-directory entry maps (2 MiB on x86-64 and arm64 with 4 KiB pages).
HUGE_BYTES = 2 << 20
#: 2 MiB-aligned bytes touched to see how the kernel maps the file.
SAMPLES = 8


def maps_cheaply(x: np.ndarray, samples: int = SAMPLES, smaps: str = "/proc/self/smaps") -> bool:
    """True when most of `samples` 2 MiB-aligned pages of the memory-mapped array x came into this process's
    page tables as whole 2 MiB folios (touching them maps them: they are read afterwards anyway)."""
    base = int(x.__array_interface__["data"][0])
    first = -(-base // HUGE_BYTES) * HUGE_BYTES
    room = (base + x.nbytes - first) // HUGE_BYTES  # whole 2 MiB blocks inside the array
    if room < samples:
        return False
    flat = x.reshape(-1).view(np.uint8)
    for i in range(samples):
        int(flat[first - base + (i * room // samples) * HUGE_BYTES])  # a read: the page is mapped
    pmd = pmd_mapped_bytes(first, smaps)
    return pmd is not None and pmd * 2 >= samples * HUGE_BYTES


def pmd_mapped_bytes(address: int, smaps: str = "/proc/self/smaps") -> int | None:
    """`FilePmdMapped` of the mapping that holds `address` (bytes), or None where the kernel does not say.

    The entries before it are read and skipped (the kernel walks each mapping's page tables as it writes
    its entry, so the file is read only up to the mapping wanted)."""
    try:
        with open(smaps, encoding="ascii", errors="replace") as fh:
            inside = False
            for line in fh:
                head = line.split(" ", 1)[0]
                if "-" in head and not head.endswith(":"):  # "start-end perms offset dev inode path"
                    if inside:
                        return None  # its entry had no FilePmdMapped line
                    lo, _, hi = head.partition("-")
                    try:
                        inside = int(lo, 16) <= address < int(hi, 16)
                    except ValueError:
                        inside = False
                elif inside and head == "FilePmdMapped:":
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None

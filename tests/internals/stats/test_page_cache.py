"""`internals.stats.page_cache`: how much of a mapping the kernel mapped with 2 MiB entries, read from smaps
text, and the verdict on an array from it (a fake smaps file stands for each kind of kernel and page cache;
this machine's own page cache decides nothing here)."""

from __future__ import annotations

import numpy as np

from internals.stats.page_cache import HUGE_BYTES, SAMPLES, maps_cheaply, pmd_mapped_bytes


def _smaps(tmp_path, entries: list[tuple[int, int, int | None]]) -> str:
    """A smaps file of mappings (start, end, FilePmdMapped kB or None for a kernel that does not say)."""
    lines = []
    for lo, hi, pmd in entries:
        lines += [f"{lo:x}-{hi:x} r--s 00000000 fd:01 1234    /models/model.safetensors", f"Size: {(hi - lo) >> 10} kB",
                  "Rss:                6464 kB", "AnonHugePages:         0 kB"]
        if pmd is not None:
            lines.append(f"FilePmdMapped:   {pmd} kB")
        lines.append("VmFlags: rd mr me ms")
    path = tmp_path / "smaps"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_pmd_mapped_bytes_of_the_mapping_holding_the_address(tmp_path):
    smaps = _smaps(tmp_path, [(0x1000, 0x5000, 8), (0x7f0000000000, 0x7f0040000000, 14336), (0x7f0040000000, 0x7f0041000000, 0)])
    assert pmd_mapped_bytes(0x7f0000200000, smaps) == 14336 * 1024
    assert pmd_mapped_bytes(0x7f003fffffff, smaps) == 14336 * 1024  # the last byte of the mapping
    assert pmd_mapped_bytes(0x7f0040000000, smaps) == 0  # the next mapping starts there
    assert pmd_mapped_bytes(0x2000, smaps) == 8 * 1024
    assert pmd_mapped_bytes(0x9000, smaps) is None  # in no mapping
    assert pmd_mapped_bytes(0x2000, _smaps(tmp_path, [(0x1000, 0x5000, None), (0x6000, 0x7000, 4)])) is None  # old kernel
    assert pmd_mapped_bytes(0x2000, str(tmp_path / "missing")) is None  # no /proc


def test_verdict_on_an_array(tmp_path):
    x = np.zeros((SAMPLES + 2) * HUGE_BYTES, np.uint8)
    base = x.__array_interface__["data"][0]
    whole = [(base - 4096, base + x.nbytes + 4096)]
    assert maps_cheaply(x, smaps=_smaps(tmp_path, [(*whole[0], SAMPLES * HUGE_BYTES >> 10)]))  # every sample: 2 MiB
    assert maps_cheaply(x, smaps=_smaps(tmp_path, [(*whole[0], (SAMPLES // 2) * HUGE_BYTES >> 10)]))  # half
    assert not maps_cheaply(x, smaps=_smaps(tmp_path, [(*whole[0], 2 * HUGE_BYTES >> 10)]))  # small folios mostly
    assert not maps_cheaply(x, smaps=_smaps(tmp_path, [(*whole[0], None)]))  # the kernel does not say
    small = x[: SAMPLES * HUGE_BYTES // 2]
    assert not maps_cheaply(small, smaps=_smaps(tmp_path, [(*whole[0], 1 << 30)]))  # too small to be worth asking
    wide = x.view(np.uint16)  # any element type: the bytes are touched
    assert maps_cheaply(wide, smaps=_smaps(tmp_path, [(*whole[0], SAMPLES * HUGE_BYTES >> 10)]))


def test_this_machine_answers_without_error():
    """On the real /proc (or none), an answer and no exception, for an anonymous array (never file pages)."""
    x = np.ones((SAMPLES + 1) * HUGE_BYTES, np.uint8)
    assert maps_cheaply(x) is False

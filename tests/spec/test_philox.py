"""Philox4x32-10 known answers (Random123 kat_vectors) in the reference."""
import pytest
import torch

from paramops.spec.reference import philox

KAT = [  # counter (4 words), key (2 words), output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_known_answers(ctr, key, want):
    call = ctr[0] | (ctr[1] << 32)
    stream = ctr[2] | (ctr[3] << 32)
    seed = key[0] | (key[1] << 32)
    calls = torch.tensor([call - (1 << 64) if call >= 1 << 63 else call])  # int64 bits of the counter
    out = philox(calls, stream, seed)
    got = tuple(int(x.item()) & 0xFFFFFFFF for x in out)
    assert got == want

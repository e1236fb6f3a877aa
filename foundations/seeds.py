"""Seeds as stable digests, the same on every machine and Python.

    derive_seed(replicate, purpose)   a run's seed for one purpose (initialization, data order,
                                      augmentation, mask randomness), 31 bits, recorded in hparams.json:
                                      each purpose its own, so changing one never shifts another
    digest_seed(*parts)               a 63-bit seed for any tuple of integers and labels (the data
                                      pipeline's draws, a branch's copies)
"""

import hashlib

PURPOSES = ("init", "data_order", "transformation", "mask")


def derive_seed(replicate: int, purpose: str) -> int:
    """A stable 31-bit seed for (replicate, purpose), the same on every machine and Python."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; expected one of {PURPOSES}")
    digest = hashlib.sha256(f"open_prune/{purpose}/{replicate}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def digest_seed(*parts: int | str) -> int:
    """A 63-bit seed that is a stable digest of `parts` (same parts -> same seed on every machine)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1

"""Proof of work (X-Seckill-Pow): SHA-256 of "{challenge}:{user id}:{nonce}" (UTF-8) must
start with `bits` zero bits. Cheap to check (one hash), costly to make at scale: each
extra account a bot runs costs it ~2^bits hashes."""

import hashlib

MAX_NONCE_LENGTH = 64


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + (8 - byte.bit_length())
    return bits


def zero_bits(*, challenge: str, user_id: str, nonce: str | None) -> int:
    """How many leading zero bits the answer `nonce` has (-1: no answer, or not one)."""
    if nonce is None or not 0 < len(nonce) <= MAX_NONCE_LENGTH:
        return -1
    return leading_zero_bits(hashlib.sha256(f"{challenge}:{user_id}:{nonce}".encode()).digest())


def solves(*, challenge: str, user_id: str, nonce: str | None, bits: int) -> bool:
    return bits <= 0 or zero_bits(challenge=challenge, user_id=user_id, nonce=nonce) >= bits


def solve(*, challenge: str, user_id: str, bits: int) -> str:
    """A nonce that solves the challenge (what a client does; tests and the storefront)."""
    nonce = 0
    while not solves(challenge=challenge, user_id=user_id, nonce=str(nonce), bits=bits):
        nonce += 1
    return str(nonce)

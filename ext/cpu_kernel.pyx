# cython: language_level=3
"""The bench's `cpu` workload, compiled: a SHA-256 chain that runs with the GIL released.

Definition (shared with the hashlib twin in bench/cpu_kernel.py, which is the reference):

    digest = SHA-256(payload)
    repeat iterations - 1 times: digest = SHA-256(digest)
    return digest                      # 32 bytes

`iterations` must be >= 1 (0 would have no digest to return, so it is a ValueError).

SHA-256 (FIPS 180-4) is written out here rather than linked from OpenSSL's libcrypto: hashlib
would hold the GIL for short inputs, and libcrypto needs its headers and a link flag on every
build machine (they are not in a python:*-slim image). The portable C below does one round in
about 0.22 us here, against about 0.31 us for a hashlib round called from Python (hashlib uses
the CPU's SHA instructions, but pays for a Python call and a bytes object per round). The point
of the native kernel is that the whole loop, including the first hash of the payload, runs
inside `with nogil:`, so N threads use N cores.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef uint32_t _K[64]
_K[:] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]

cdef uint32_t _H0[8]
_H0[:] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]


cdef inline uint32_t _rotr(uint32_t x, int n) noexcept nogil:
    return (x >> n) | (x << (32 - n))


cdef inline uint32_t _load_be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline void _store_be32(uint8_t* p, uint32_t x) noexcept nogil:
    p[0] = <uint8_t>(x >> 24)
    p[1] = <uint8_t>(x >> 16)
    p[2] = <uint8_t>(x >> 8)
    p[3] = <uint8_t>x


cdef void _compress(uint32_t* state, const uint32_t* message) noexcept nogil:
    """One SHA-256 compression: fold a 16-word (512-bit) message block into `state`."""
    cdef uint32_t w[64]
    cdef uint32_t a, b, c, d, e, f, g, h, t1, t2
    cdef int i
    for i in range(16):
        w[i] = message[i]
    for i in range(16, 64):
        w[i] = (
            w[i - 16]
            + (_rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3))
            + w[i - 7]
            + (_rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10))
        )
    a = state[0]; b = state[1]; c = state[2]; d = state[3]
    e = state[4]; f = state[5]; g = state[6]; h = state[7]
    for i in range(64):
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h = g; g = f; f = e; e = d + t1
        d = c; c = b; b = a; a = t1 + t2
    state[0] += a; state[1] += b; state[2] += c; state[3] += d
    state[4] += e; state[5] += f; state[6] += g; state[7] += h


cdef void _compress_bytes(uint32_t* state, const uint8_t* block) noexcept nogil:
    cdef uint32_t message[16]
    cdef int i
    for i in range(16):
        message[i] = _load_be32(block + 4 * i)
    _compress(state, message)


cdef void _sha256_state(const uint8_t* data, size_t size, uint32_t* state) noexcept nogil:
    """SHA-256 of data[0:size], left as the 8 state words (the digest, before serialising)."""
    cdef uint8_t tail[128]
    cdef size_t rest, tail_size
    cdef uint64_t bit_length = (<uint64_t>size) * 8
    cdef int i
    memcpy(state, _H0, sizeof(_H0))
    rest = size
    while rest >= 64:
        _compress_bytes(state, data)
        data += 64
        rest -= 64
    # Padding: 0x80, zeros, then the message length in bits as a big-endian 64-bit integer,
    # which needs a second block when fewer than 9 bytes are left in this one.
    memset(tail, 0, sizeof(tail))
    if rest:
        memcpy(tail, data, rest)
    tail[rest] = 0x80
    tail_size = 64 if rest < 56 else 128
    for i in range(8):
        tail[tail_size - 1 - i] = <uint8_t>(bit_length >> (8 * i))
    _compress_bytes(state, tail)
    if tail_size == 128:
        _compress_bytes(state, tail + 64)


cdef void _sha256_chain(const uint8_t* data, size_t size, long long iterations,
                        uint8_t* out) noexcept nogil:
    cdef uint32_t state[8]
    cdef uint32_t message[16]
    cdef long long n
    cdef int i
    _sha256_state(data, size, state)
    # Each later round hashes the previous 32-byte digest, so its single padded block is fixed
    # apart from the first 8 words, which are the previous state words themselves: no need to
    # serialise the digest to bytes and parse it back.
    message[8] = 0x80000000
    for i in range(9, 15):
        message[i] = 0
    message[15] = 256  # bit length of a 32-byte message
    for n in range(iterations - 1):
        for i in range(8):
            message[i] = state[i]
        memcpy(state, _H0, sizeof(_H0))
        _compress(state, message)
    for i in range(8):
        _store_be32(out + 4 * i, state[i])


def sha256_chain(const unsigned char[::1] payload not None, long long iterations) -> bytes:
    """Return the SHA-256 chain digest (32 bytes) of `payload` over `iterations` rounds.

    `payload` is any contiguous bytes-like object; it stays exported (so it cannot be resized)
    while the GIL is released. Raises ValueError when iterations < 1.
    """
    cdef uint8_t out[32]
    cdef const uint8_t* data = NULL
    cdef size_t size = payload.shape[0]
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if size:
        data = &payload[0]
    with nogil:
        _sha256_chain(data, size, iterations, out)
    return PyBytes_FromStringAndSize(<char *>out, 32)

"""GGUF's tensor types: plain floats and ggml's quantisation blocks, expanded to float32.

A quantised tensor is a run of fixed-size blocks along each row (GGUF's first, fastest
dimension). Every block holds one or two float16 numbers (a scale d, maybe a minimum m)
and small packed integers q; a weight is d * q (+ m). The "K" types group 8 or 16
sub-blocks into a super-block of 256 weights whose sub-scales are themselves quantised.

Each decoder below works on all blocks at once: the bytes are reshaped to
(n_blocks, bytes_per_block), each field is a column slice, and numpy's broadcasting
does the rest (no Python loop per block). Layouts follow ggml's block structs
(ggml-common.h); tests compare every decoder with the `gguf` package's.
"""

import numpy as np

# The table of types (name, weights per block, bytes per block) lives with the container.
from ..gguf_file import TENSOR_TYPES, TYPE_IDS  # noqa: F401


def _f16(blocks, start):
    """The float16 at bytes start..start+2 of every block, as a (n_blocks, 1) float32 column."""
    return blocks[:, start:start + 2].copy().view("<f2").astype(np.float32)


def _nibbles(packed):
    """16 bytes -> 32 four-bit numbers: the low nibbles are weights 0..15, the high 16..31."""
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1)


def _fifth_bits(blocks, start):
    """Q5's 32 high bits, a little-endian uint32 per block: bit j belongs to weight j."""
    high = blocks[:, start:start + 4].copy().view("<u4")
    return ((high >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


def _q4_0(blocks):
    # d (f16) | 16 bytes of 4-bit q          w = d * (q - 8)
    q = _nibbles(blocks[:, 2:18]).astype(np.int8) - 8
    return _f16(blocks, 0) * q


def _q4_1(blocks):
    # d (f16) | m (f16) | 16 bytes of 4-bit q          w = d * q + m
    return _f16(blocks, 0) * _nibbles(blocks[:, 4:20]) + _f16(blocks, 2)


def _q5_0(blocks):
    # d (f16) | 32 high bits (u32) | 16 bytes of low nibbles          w = d * (q - 16)
    q = (_nibbles(blocks[:, 6:22]) | (_fifth_bits(blocks, 2) << 4)).astype(np.int8) - 16
    return _f16(blocks, 0) * q


def _q5_1(blocks):
    # d (f16) | m (f16) | 32 high bits (u32) | 16 bytes of low nibbles    w = d * q + m
    q = _nibbles(blocks[:, 8:24]) | (_fifth_bits(blocks, 4) << 4)
    return _f16(blocks, 0) * q + _f16(blocks, 2)


def _q8_0(blocks):
    # d (f16) | 32 int8 q          w = d * q
    return _f16(blocks, 0) * blocks[:, 2:34].view(np.int8)


def _k_scales(packed):
    """The 8 six-bit scales and 8 six-bit minimums of a Q4_K/Q5_K super-block, from 12 bytes.

    Bytes 0..3 hold scales 0..3 in their low 6 bits, bytes 4..7 minimums 0..3; scales and
    minimums 4..7 take their low 4 bits from bytes 8..11 (scale: low nibble, minimum: high)
    and their top 2 bits from the spare top bits of bytes 0..3 (scales) and 4..7 (minimums).
    """
    scales = np.empty((len(packed), 8), np.uint8)
    minimums = np.empty((len(packed), 8), np.uint8)
    scales[:, :4] = packed[:, 0:4] & 63
    minimums[:, :4] = packed[:, 4:8] & 63
    scales[:, 4:] = (packed[:, 8:12] & 0x0F) | ((packed[:, 0:4] >> 6) << 4)
    minimums[:, 4:] = (packed[:, 8:12] >> 4) | ((packed[:, 4:8] >> 6) << 4)
    return scales.astype(np.float32), minimums.astype(np.float32)


def _k_low_nibbles(packed):
    """128 bytes -> the 4-bit parts of 8 sub-blocks of 32: each 32-byte group gives two
    sub-blocks, its low nibbles first, then its high nibbles. Shape (n_blocks, 8, 32)."""
    groups = packed.reshape(len(packed), 4, 1, 32)
    return np.concatenate([groups & 0x0F, groups >> 4], axis=2).reshape(len(packed), 8, 32)


def _q4_k(blocks):
    # d (f16) | dmin (f16) | 12 bytes of 6-bit scales s, minimums m | 128 bytes of 4-bit q
    # sub-block j (32 weights):  w = d * s_j * q - dmin * m_j
    scales, minimums = _k_scales(blocks[:, 4:16])
    q = _k_low_nibbles(blocks[:, 16:144])
    d, dmin = _f16(blocks, 0)[:, :, None], _f16(blocks, 2)[:, :, None]
    weights = d * scales[:, :, None] * q - dmin * minimums[:, :, None]
    return weights.reshape(len(blocks), 256)


def _q5_k(blocks):
    # Q4_K's layout plus 32 bytes of fifth bits before the nibbles: bit j of byte l is the
    # high bit of weight l of sub-block j.  w = d * s_j * (q + 16 * bit) - dmin * m_j
    scales, minimums = _k_scales(blocks[:, 4:16])
    high = blocks[:, 16:48]
    bits = (high[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
    q = _k_low_nibbles(blocks[:, 48:176]) | (bits << 4)
    d, dmin = _f16(blocks, 0)[:, :, None], _f16(blocks, 2)[:, :, None]
    weights = d * scales[:, :, None] * q - dmin * minimums[:, :, None]
    return weights.reshape(len(blocks), 256)


def _q6_k(blocks):
    # 128 bytes of low nibbles | 64 bytes of 2-bit high parts | 16 int8 scales | d (f16)
    # Two halves of 128 weights. In a half, 64 low bytes give weights 0..63 from their low
    # nibbles and 64..127 from their high nibbles; byte l of the 32 high bytes gives the top
    # 2 bits of weights l, l+32, l+64, l+96 (bits 0-1, 2-3, 4-5, 6-7).
    # Weight e uses scale e // 16:  w = d * scale * (q - 32), q in 0..63.
    n = len(blocks)
    low = blocks[:, 0:128].reshape(n, 2, 64)
    low = np.concatenate([low & 0x0F, low >> 4], axis=2)  # (n, 2, 128)
    high = blocks[:, 128:192].reshape(n, 2, 1, 32)
    high = ((high >> np.array([0, 2, 4, 6], np.uint8)[None, None, :, None]) & 3)
    q = (low | (high.reshape(n, 2, 128) << 4)).reshape(n, 256).astype(np.int8) - 32
    scales = np.repeat(blocks[:, 192:208].view(np.int8).astype(np.float32), 16, axis=1)
    return _f16(blocks, 208) * scales * q


DECODERS = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0,
            "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}


def tensor_bytes(type_name, n_weights):
    """How many bytes n_weights weights of this type take (n_weights a multiple of a block)."""
    _, block_weights, block_bytes = TENSOR_TYPES[TYPE_IDS[type_name]]
    return n_weights // block_weights * block_bytes


def dequantize(raw, type_name):
    """float32 weights from the raw bytes (uint8 array) of whole blocks of `type_name`."""
    if type_name == "F32":
        return raw.view("<f4").astype(np.float32)
    if type_name == "F16":
        return raw.view("<f2").astype(np.float32)
    if type_name == "BF16":  # the upper 16 bits of a float32
        return np.left_shift(raw.view("<u2"), 16, dtype=np.uint32).view(np.float32)
    _, _, block_bytes = TENSOR_TYPES[TYPE_IDS[type_name]]
    return DECODERS[type_name](raw.reshape(-1, block_bytes)).reshape(-1)


def quantize_q8_0(values):
    """float values (a multiple of 32) -> Q8_0 bytes: per block d = max|w| / 127 (as float16),
    q = round(w / d) with halves rounded away from zero (C's roundf), as ggml's reference
    quantiser does."""
    blocks = np.asarray(values, np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / 127
    inverse = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    magnitude = np.abs(blocks * inverse)
    whole = np.floor(magnitude)  # floor(|x| + 0.5) could round 0.49999997 + 0.5 up to 1
    rounded = whole + (magnitude - whole >= 0.5)
    q = (np.sign(blocks) * rounded).astype(np.int8)
    out = np.empty((len(blocks), 34), np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)

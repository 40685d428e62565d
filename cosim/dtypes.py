"""Numeric formats and their storage size."""

from __future__ import annotations

from enum import Enum


class DType(str, Enum):
    bfloat16 = "bfloat16"
    fp8 = "fp8"
    fp4 = "fp4"  # NVFP4 / MXFP4: 4-bit values plus one 8-bit scale per 16/32 values


# Bytes per element, block scales included (NVFP4: 16 values share one FP8 scale).
BYTES_PER_ELEMENT: dict[DType, float] = {
    DType.bfloat16: 2.0,
    DType.fp8: 1.0,
    DType.fp4: 0.5 + 1.0 / 16,
}


def dtype_bytes(dtype: DType | str) -> float:
    return BYTES_PER_ELEMENT[DType(dtype)]

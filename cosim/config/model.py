"""Config group `model`: a Hugging Face config.json (verbatim) plus serving dtypes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from cosim.config.errors import require
from cosim.dtypes import DType


@dataclass
class ModelConfig:
    name: str = MISSING
    # The fields of the model's Hugging Face config.json, copied as they are.
    hf_config: dict[str, Any] = field(default_factory=dict)
    weight_dtype: DType = DType.fp8  # routed/shared expert and projection weights
    kv_dtype: DType = DType.bfloat16
    activation_dtype: DType = DType.bfloat16
    max_context: int = 0  # 0: the config's max_position_embeddings

    def validate(self, prefix: str = "model") -> None:
        require(bool(self.hf_config), f"{prefix}.hf_config", "empty: paste the model's config.json fields")
        require(self.max_context >= 0, f"{prefix}.max_context", f"must be >= 0, got {self.max_context}")

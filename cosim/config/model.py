"""Config group `model`: a Hugging Face config.json (verbatim) plus serving dtypes.

A model is `hydra_configs/model/<name>.yaml`: a `name`, the `hf_config` block (the fields of the
model's config.json, pasted as they are; JSON is valid YAML) and the precisions it is served in.
The architecture is read from `hf_config` by :class:`cosim.model.spec.ModelSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from cosim.dtypes import DType
from cosim.errors import require
from cosim.model.spec import ModelSpec

FP8_SCALINGS = ("block", "tensor")
FP4_FORMATS = ("nvfp4", "mxfp4")


@dataclass
class ModelConfig:
    name: str = MISSING
    hf_repo: str = ""  # Hugging Face repository the hf_config was copied from (provenance)
    # The fields of the model's Hugging Face config.json, copied as they are.
    hf_config: dict[str, Any] = field(default_factory=dict)
    # Weight precision of attention and dense projections, dense MLPs, shared experts and
    # Mamba projections. Embedding, LM head, norms, biases and routers stay bfloat16.
    weight_dtype: DType = DType.fp8
    expert_dtype: DType | None = None  # routed experts; null: weight_dtype
    attention_dtype: DType | None = None  # attention projections; null: weight_dtype
    fp8_scaling: str = "block"  # block: 128x128 block scales (DeepSeek); tensor: per-tensor
    fp4_format: str = "nvfp4"  # nvfp4 (16-value blocks, FP8 scale) | mxfp4 (32-value, E8M0)
    kv_dtype: DType = DType.bfloat16
    activation_dtype: DType = DType.bfloat16
    max_context: int = 0  # 0: the config's max_position_embeddings

    def validate(self, prefix: str = "model") -> None:
        require(bool(self.hf_config), f"{prefix}.hf_config",
                "empty: paste the model's config.json fields")
        require(self.max_context >= 0, f"{prefix}.max_context",
                f"must be >= 0, got {self.max_context}")
        require(self.fp8_scaling in FP8_SCALINGS, f"{prefix}.fp8_scaling",
                f"unknown {self.fp8_scaling!r}; choose one of {', '.join(FP8_SCALINGS)}")
        require(self.fp4_format in FP4_FORMATS, f"{prefix}.fp4_format",
                f"unknown {self.fp4_format!r}; choose one of {', '.join(FP4_FORMATS)}")
        # Reading the architecture checks every hf_config field it needs (names the field).
        ModelSpec.from_config(self, prefix=prefix)

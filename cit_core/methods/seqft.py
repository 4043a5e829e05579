"""SeqFT: plain sequential fine-tuning, the baseline every remedy is measured against.

`seqft` trains every parameter; `seqft_lora` trains one peft LoRA adapter continued across all tasks
(the base stays frozen), which is the baseline the LoRA-based methods compare to.
"""
from __future__ import annotations

from ..model import lora_config
from .base import Method


class SeqFT(Method):
    name = "seqft"
    title = "Sequential fine-tuning"


class SeqFTLoRA(Method):
    name = "seqft_lora"
    title = "Sequential fine-tuning (one LoRA)"
    uses_lora = True

    def setup(self, model):
        from peft import get_peft_model
        return get_peft_model(model, lora_config(self.ctx.config.model), adapter_name="default")

"""PeaPOD's training settings (:class:`PeaPODSFTConfig`, on hfrec's shared SFT config: ``hfrec.methods.common.sft``
lists every default that differs from TRL's ``SFTConfig``). What differs here from
:class:`~hfrec.methods.common.sft.LoRASFTConfig`:

=====================  ==============  =====================================================================
field                  LoRASFTConfig   PeaPODSFTConfig
=====================  ==============  =====================================================================
prompt_learning_rate   (new)           1e-3: the prompt pool, its attention and the task prompts (a few
                                       thousand numbers learn at prompt-tuning rates; LoRA at learning_rate)
=====================  ==============  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.sft import LoRASFTConfig


@dataclass
class PeaPODSFTConfig(LoRASFTConfig):
    """LoRA on the backbone and the personalized-prompt modules trained together on the three tasks' rows
    (:func:`hfrec.methods.peapod.data.build_training_examples`)."""

    prompt_learning_rate: float = field(
        default=1e-3, metadata={"help": "AdamW learning rate of the prompt pool, its attention and the task prompts."})
    train_prompts: bool = field(
        default=True, metadata={"help": "Train the prompt modules (False: LoRA only, e.g. without a soft prompt)."})


__all__ = ["PeaPODSFTConfig"]

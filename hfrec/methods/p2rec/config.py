"""TRL config of P2Rec's preference-parser SFT, on hfrec's shared LoRA SFT config (``hfrec.methods.common.sft``, whose
module docstring lists every default that differs from TRL's ``SFTConfig``). What differs here:

=================  ==============  =========================================================================
field              LoRASFTConfig   P2Rec
=================  ==============  =========================================================================
warmup_steps       0               0.1 (a ratio of the steps): the head starts at zero and Adam's first steps
                                   move every weight by about the learning rate, so each logit moves by about
                                   lr x the L1 norm of the pooled state (hundreds for a 576-wide LLM state);
                                   a warmup keeps the first steps from overshooting
=================  ==============  =========================================================================

The adapter is a ``SEQ_CLS`` LoRA (``PreferenceParserTrainer``): the head (``score``) trains in full and is saved with
the adapter; ``all-linear`` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.sft import LoRASFTConfig


@dataclass
class PreferenceParserSFTConfig(LoRASFTConfig):
    """Information reconstruction: LoRA on the backbone + the distribution head, trained with the KL loss of
    ``PreferenceParserLM`` on (prompt, target distribution) examples."""

    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup steps (a number < 1: a ratio of the run)."})


__all__ = ["PreferenceParserSFTConfig"]

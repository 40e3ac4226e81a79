"""The shared LLM-method layer: backbones, prompts, SFT config/trainer base, SR teachers, candidate scoring,
ranking runs. Import from the submodules (``hfrec.methods.common.scoring`` ...); this package imports nothing, so
``import hfrec`` stays light (TRL is imported only by ``sft``)."""

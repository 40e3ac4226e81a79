"""The LLM methods of hfrec: ``common/`` is the layer they all stand on (backbones, prompts, SFT scaffolding,
teachers, candidate scoring, ranking runs); each other folder holds what makes one method itself."""

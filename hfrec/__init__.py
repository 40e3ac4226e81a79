"""hfrec: LLM-enhanced sequential recommendation on the Hugging Face stack."""

__version__ = "0.1.0"

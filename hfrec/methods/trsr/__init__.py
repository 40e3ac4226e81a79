"""LLM-TRSR (summaries of text-rich histories + a LoRA yes/no recommender): summary prompts and the summariser,
training examples, the SFT config and trainer, the ranking scorer, the pipeline's recommender and the end-to-end
script. The saved model is the backbone's own causal-LM class with a PEFT adapter (no model class of its own)."""

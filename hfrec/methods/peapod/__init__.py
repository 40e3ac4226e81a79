"""PeaPOD: personalized soft prompts composed from a shared prompt pool, trained on three tasks (see script.py)."""

"""Publishing and fetching hfrec models on the Hugging Face Hub.

Everything goes through the ordinary ``huggingface_hub`` client, so any Hub-compatible endpoint works
(``HF_ENDPOINT``, read by ``huggingface_hub`` when it is imported). One module per concern:

- ``records``: :func:`load_eval_results` reads a run's ``eval_results.json`` (docs/CONTRACTS.md).
- ``cards``: :func:`build_model_card` renders ``templates/model_card.md``; its ``model-index`` metrics come
  from the evaluation records, never typed by hand, and :func:`metrics_from_card` reads them back.
  :func:`write_model_card` writes it as README.md (a README written by a person is kept).
- ``push``: :func:`push` uploads a saved folder (an hfrec model, DELRec, or a PEFT adapter) with its card;
  pickled weights are refused before anything is sent. :func:`enable_card_push` makes a model class's
  ``push_to_hub`` do the same.
- ``pull``: :func:`pull` downloads a repository (pickles are never fetched), optionally into ``local_dir``
  atomically: on any error nothing is left there.
- ``adapters``: :func:`check_adapter_base` / :func:`load_adapter` refuse an adapter whose recorded base
  model differs from the base model given.
- ``cli``: :func:`add_push_parser` / :func:`add_pull_parser` add ``hfrec push`` / ``hfrec pull`` to a CLI.
- ``folder``: what a saved model folder holds (shared by the others; not public).
"""

from .adapters import AdapterBaseMismatchError, check_adapter_base, load_adapter
# TEMPLATE_PATH and IGNORE_PATTERNS were public constants of the former hfrec/hub.py (outside __all__): kept importable
from .cards import CARD_MARKER, TEMPLATE_PATH, build_model_card, metrics_from_card, write_model_card
from .cli import add_pull_parser, add_push_parser, pull_command, push_command
from .folder import IGNORE_PATTERNS, PICKLE_PATTERNS
from .pull import pull
from .push import HubPushError, enable_card_push, push
from .records import EVAL_RESULTS_NAME, load_eval_results

__all__ = [
    "AdapterBaseMismatchError",
    "HubPushError",
    "CARD_MARKER",
    "EVAL_RESULTS_NAME",
    "PICKLE_PATTERNS",
    "add_pull_parser",
    "add_push_parser",
    "build_model_card",
    "check_adapter_base",
    "enable_card_push",
    "load_adapter",
    "load_eval_results",
    "metrics_from_card",
    "pull",
    "pull_command",
    "push",
    "push_command",
    "write_model_card",
]

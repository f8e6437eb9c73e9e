"""`builtin:tiny-lm`: a tiny random GPT-2 with a character tokenizer, so prompt expansion runs offline.

Two layers of 32 dimensions over the printable ASCII characters (one token each: a BPE model with
no merges, fused back by the decoder), plus end-of-text and unknown tokens. Its text is gibberish
of printable characters; it exists to exercise the expansion path (seeding, caching, recording)
without a download. Registered with forgeset.core.builtin_models as kind "prompt".
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from forgeset.core.builtin_models import WEIGHT_SEED, register_builtin_recipe

EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<unk>"
# Printable ASCII without the control whitespace (tab, newlines): prompts stay on one line.
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " "
MAX_LENGTH = 512

TINY_LM: dict[str, Any] = {
    "vocab_size": len(ALPHABET) + 2,
    "n_positions": MAX_LENGTH,
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 2,
    "bos_token_id": len(ALPHABET),
    "eos_token_id": len(ALPHABET),
    "pad_token_id": len(ALPHABET),
}


def char_tokenizer(folder: Path) -> None:
    """Write a character-level fast tokenizer over ALPHABET (ids in alphabet order) to `folder`."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {character: index for index, character in enumerate(ALPHABET)}
    vocab[EOS_TOKEN] = len(vocab)
    vocab[UNK_TOKEN] = len(vocab)
    # No pre-tokenizer and no merges: the whole text is one word, split into its characters.
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MAX_LENGTH,
    )
    fast.save_pretrained(folder)


def _build_tiny_lm(folder: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(WEIGHT_SEED)
    GPT2LMHeadModel(GPT2Config(**TINY_LM)).save_pretrained(folder, safe_serialization=True)
    char_tokenizer(folder)


register_builtin_recipe("tiny-lm", "prompt", _build_tiny_lm, TINY_LM, ("tokenizers", "torch", "transformers"))

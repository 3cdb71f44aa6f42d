"""Character-level tokenizer for the embedded toy models.

One token per printable ASCII character keeps the toy tasks (reversing,
sorting, digit-by-digit addition) learnable by a tiny model: it never has to
reason about how a word was split into sub-word pieces.

The tokenizer is a plain `tokenizers` WordLevel model wrapped in
`PreTrainedTokenizerFast`, so it saves as `tokenizer.json` and loads back with
`AutoTokenizer.from_pretrained(folder)` without `trust_remote_code`.

Special tokens: `<pad>`, `<bos>`, `<eos>`, `<unk>`. Encoding adds NO special
tokens (prompts are fed without BOS, both in pretraining and in distillation);
training sequences end with an explicit EOS so generation knows when to stop.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]

# Vertical tab and form feed are "printable" to Python but never occur in our
# texts; leaving them out keeps the vocabulary to what we actually train on.
CHARACTERS = [c for c in string.printable if c not in "\x0b\x0c"]


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Return a fresh character-level tokenizer (deterministic vocabulary order)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Split on every single character and keep each as its own piece, so no
    # whitespace is dropped or merged: the encoding is exactly one id per char.
    # ("[\s\S]" rather than "." because "." would not match a newline.)
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # The default decoder would join tokens with spaces; Fuse concatenates.
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )

"""A small Llama-style causal LM for the embedded toy models.

Plain `LlamaForCausalLM` (RMSNorm, rotary positions, SwiGLU MLP) so the saved
folder loads with `AutoModelForCausalLM.from_pretrained` and goes through the
exact same code path as a real hub model. Word embeddings are tied to the
output head: with a ~100-token vocabulary that barely matters for size, but it
is what small Llamas do and keeps one fewer matrix to train.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


def toy_llama_config(
    vocab_size: int,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
) -> LlamaConfig:
    """Config for a tiny Llama; the MLP width defaults to the usual ~8/3 x hidden."""
    if intermediate_size is None:
        # SwiGLU has three matrices, so 8/3 x hidden keeps it as big as a 4x MLP.
        intermediate_size = (hidden_size * 8 // 3 + 31) // 32 * 32
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        hidden_act="silu",
        attention_dropout=0.0,
    )


def build_toy_model(tokenizer: PreTrainedTokenizerBase, **size) -> LlamaForCausalLM:
    """Randomly initialised toy model whose config knows the tokenizer's special ids.

    `size` goes to `toy_llama_config` (hidden_size, num_layers, num_heads, ...).
    """
    config = toy_llama_config(len(tokenizer), **size)
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    return LlamaForCausalLM(config)

"""The project's own tiny model family: char tokenizer, small Llama, synthetic tasks.

`toy-base/` (shipped in the repo) is pretrained by `python -m engine.toy.pretrain`;
see its TRAINING.md. It lets the whole workbench run offline in minutes.
`toy-icl/` is toy-base continued on few-shot prompts (`build_toy_icl.sh`): it looks a
letter-substitution key up in the worked examples of its prompt (the few-shot and
long-context sample projects); engine/toy/TRAINING.md has the formats, the recipe
and what was measured.
`toy-learner/` is toy-base continued on episodes of string transformations
(`build_toy_learner.sh`, `transforms.py`): it infers which transformation its
worked examples show, and applies it (the few-shot and explanations-toy projects).
"""

from __future__ import annotations

from pathlib import Path

from engine.toy.model import build_toy_model, toy_llama_config
from engine.toy.tokenizer import build_char_tokenizer

TOY_BASE_DIR = Path(__file__).parent / "toy-base"
TOY_ICL_DIR = Path(__file__).parent / "toy-icl"
TOY_LEARNER_DIR = Path(__file__).parent / "toy-learner"

# Names that resolve to a model folder shipped inside the package.
_TOY_MODELS = {"toy-base": TOY_BASE_DIR, "toy-icl": TOY_ICL_DIR, "toy-learner": TOY_LEARNER_DIR}


def resolve_toy_model(name: str) -> Path | None:
    """Folder of a shipped toy model for `name`, or None if it is not one of ours."""
    return _TOY_MODELS.get(name)


__all__ = ["TOY_BASE_DIR", "TOY_ICL_DIR", "TOY_LEARNER_DIR", "build_char_tokenizer", "build_toy_model", "resolve_toy_model",
           "toy_llama_config"]

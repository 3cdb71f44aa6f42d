"""A teacher ensemble decoded as the paper scored it (appendix B.5: "greedy decoding on the
ensemble of 8 prompts"): at every step the next token is the argmax of the mean, over the
input's K prompts, of the teacher's softmax, the same average the labels are made of
(engine/teacher/teacher_pass.py, `ensemble_probs`).

The K prompts of an input are K rows of one `generate` batch (left-padded, KV cache on);
a logits processor replaces each row's scores by the log of its group's mean softmax, so
every row of a group takes the same greedy token and the group ends together.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList

from engine.project.schema import Project
from engine.teacher.generation import (_eos_ids, batch_inputs, cut_output, encode_prompts,
                                       only_the_projects_settings)
from engine.teacher.teacher_pass import teacher_prompts


class GroupMeanSoftmax:
    """Scores -> log of the mean softmax over each run of `group` consecutive rows (one input's prompts)."""

    def __init__(self, group: int):
        self.group = group

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """scores: (inputs * group, vocab) -> the same shape, equal within a group."""
        probs = torch.softmax(scores.float(), dim=-1).view(-1, self.group, scores.shape[-1]).mean(dim=1)
        return probs.log().repeat_interleave(self.group, dim=0)


@torch.no_grad()
def ensemble_greedy(project: Project, model, tokenizer, inputs: list[dict], on_batch=None) -> list[tuple[str, list[int], int]]:
    """(output text, output ids, prompt tokens of prompt 0) per input, decoded from the ensemble's mean distribution."""
    ensemble = project.teacher.ensemble
    max_new_tokens = project.eval.max_new_tokens or project.generate.max_new_tokens
    stops = list(project.generate.stop)
    per_batch = max(1, project.eval.batch_size // ensemble)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos_ids = _eos_ids(model, tokenizer)
    results = []
    for first in range(0, len(inputs), per_batch):
        chunk = inputs[first: first + per_batch]
        prompts = [prompt for example in chunk for prompt in teacher_prompts(project, tokenizer, example)]
        prompt_ids = encode_prompts(tokenizer, prompts)
        input_ids, attention_mask = batch_inputs(prompt_ids, pad, 0, model.device)
        options = dict(do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=max_new_tokens,
                       pad_token_id=pad, use_cache=True,
                       logits_processor=LogitsProcessorList([GroupMeanSoftmax(ensemble)]))
        if stops:
            options.update(stop_strings=stops, tokenizer=tokenizer)
        with only_the_projects_settings(model):
            sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
        new_tokens = sequences[:, input_ids.shape[1]:].tolist()
        for row in range(0, len(prompt_ids), ensemble):  # every row of a group holds the same tokens
            ids = cut_output(tokenizer, new_tokens[row], eos_ids, stops)
            results.append((tokenizer.decode(ids, skip_special_tokens=True), ids, len(prompt_ids[row])))
        if on_batch is not None:
            on_batch(len(results), len(inputs))
    return results


def decode_ensemble(project: Project, model, tokenizer, inputs: list[dict], extractor, on_batch=None) -> list:
    """The ensemble's greedy outputs as `Decoded` rows, answers through `extractor` (the teacher row)."""
    from engine.evaluation.evaluate import Decoded
    from engine.teacher.teacher_pass import teacher_prompt

    decoded = []
    for example, (text, ids, prompt_tokens) in zip(inputs, ensemble_greedy(project, model, tokenizer, inputs, on_batch)):
        found = extractor.find(text)
        decoded.append(Decoded(teacher_prompt(project, tokenizer, example), prompt_tokens, text, ids, len(ids),
                               found.text if found else ""))
    return decoded

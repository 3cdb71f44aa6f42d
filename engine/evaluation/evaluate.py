"""Teacher, student before, student after, on held-out inputs (paper section 3).

Everyone decodes greedily. Teacher outputs go through the extractor; a student
output *is* its answer (up to the first stop string), since the student is
trained to say only the answer. Scores compare answers with the reference: the
input's label, or the teacher's answer (`eval.reference`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass

import torch

from engine.project.schema import Project
from engine.training.data import collate
from engine.errors import EngineError, MetricError
from engine.teacher.extractors import Extractor, answer_token_span
from engine.teacher.generation import generate_all
from engine.training.losses import dense_kl
from engine.teacher.teacher_pass import student_prompt, teacher_prompt
from engine.project.usercode import load_callable


@dataclass
class Decoded:
    prompt: str
    prompt_tokens: int
    output: str
    output_ids: list[int]
    generated_tokens: int
    answer: str
    span: tuple[int, int] | None = None  # teacher only: answer token span in output_ids
    answer_logits: torch.Tensor | None = None  # teacher only: (span length, vocab), at the answer tokens


def decode(project: Project, model, tokenizer, inputs: list[dict], template: str,
           extractor: Extractor | None = None, keep_logits: bool = False, on_batch=None,
           rendering: int = 0, journal=None, journal_name: str = "") -> list[Decoded]:
    """Greedy outputs with the `template` ("teacher" or "student") prompt; answers via `extractor` or directly.

    `rendering` picks one prompt of a teacher ensemble (0 is the one the teacher pass samples from).
    `on_batch(done, total)` is called after each batch (progress, and the place a stop request is honoured).
    With a `journal` (engine/evaluation/eval_journal.py), each finished batch is kept under
    `journal_name`, and batches kept by an earlier, stopped evaluation are not decoded again.
    """
    if template == "teacher":
        prompts = [teacher_prompt(project, tokenizer, example, rendering) for example in inputs]
    else:
        prompts = [student_prompt(project, tokenizer, example) for example in inputs]
    max_new_tokens = project.eval.max_new_tokens or project.generate.max_new_tokens
    kept = None
    if journal is not None:
        kept = journal.decode(journal_name, {
            "weights": str(getattr(model.config, "_name_or_path", "")), "template": template,
            "prompts": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(), "batch_size": project.eval.batch_size,
            "max_batch_tokens": project.generate.max_batch_tokens, "max_new_tokens": max_new_tokens,
            "stop": list(project.generate.stop), "reuse_prefix": project.generate.reuse_prefix})
    generated = generate_all(model, tokenizer, prompts, batch_size=project.eval.batch_size,
                             max_batch_tokens=project.generate.max_batch_tokens, which=template,
                             max_new_tokens=max_new_tokens, temperature=0.0, stops=project.generate.stop,
                             on_batch=on_batch, reuse_prefix=project.generate.reuse_prefix,
                             finished_batch=kept.load if kept else None, on_batch_done=kept.save if kept else None)
    decoded = []
    for prompt, output in zip(prompts, generated):
        span = None
        if extractor is not None:
            found = extractor.find(output.text)
            answer = found.text if found else ""
            if found is not None:
                token_span = answer_token_span(tokenizer, output.output_ids, output.text, found, project.generate.stop)
                span = (token_span.start, token_span.end)
        else:
            answer = student_answer(project, output.text)
        decoded.append(Decoded(prompt, len(output.prompt_ids), output.text, output.output_ids,
                               len(output.output_ids), answer, span))
    if keep_logits:
        keep_answer_logits(model, generated, decoded, project.eval.batch_size)
    return decoded


def student_answer(project: Project, text: str) -> str:
    """A student output's answer, cut the way the teacher's answer is: at the stop strings, at
    `extract.until` when the teacher's answer ends there, and stripped only if `extract.strip`."""
    for stop in project.generate.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    until = project.extract.until if project.extract.kind == "after_marker" else ""
    if until and until in text:
        text = text[: text.index(until)]
    return text.strip() if project.extract.strip else text


@torch.no_grad()
def keep_answer_logits(model, generated: list, decoded: list[Decoded], batch_size: int) -> None:
    """Each answer's own rows of logits, from one forward pass over prompt + output.

    Only the answer's rows: a real vocabulary makes whole outputs' logits gigabytes,
    so generation keeps none and the LM head runs at the answer positions only.
    """
    from engine.training.student_forward import answer_logits

    wanted = [index for index, d in enumerate(decoded) if d.span is not None and d.span[1] > d.span[0]]
    for first in range(0, len(wanted), batch_size):
        chunk = wanted[first: first + batch_size]
        sequences = [generated[i].prompt_ids + decoded[i].output_ids for i in chunk]
        width = max(len(ids) for ids in sequences)
        input_ids = torch.zeros(len(chunk), width, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        positions = []
        for row, (index, ids) in enumerate(zip(chunk, sequences)):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            start, end = decoded[index].span
            prompt_length = len(generated[index].prompt_ids)
            # The logits at position t predict token t + 1.
            positions += [(row, prompt_length - 1 + j) for j in range(start, end)]
        rows = answer_logits(model, input_ids.to(model.device), attention_mask.to(model.device),
                             torch.tensor(positions)).float().cpu()
        offset = 0
        for index in chunk:
            length = decoded[index].span[1] - decoded[index].span[0]
            decoded[index].answer_logits = rows[offset: offset + length]
            offset += length


# --- scores --------------------------------------------------------------------

def references_for(project: Project, inputs: list[dict], teacher: list[Decoded]) -> list[str]:
    if project.eval.reference == "teacher":
        return [decoded.answer for decoded in teacher]
    missing = sum(1 for example in inputs if example.get("label") is None)
    if missing:
        raise MetricError(f"`eval.reference` = 'label', but {missing} of {len(inputs)} eval inputs have no label; "
                          "add labels to the inputs or set eval.reference = \"teacher\"")
    return [example["label"].strip() for example in inputs]


def score(project: Project, answers: list[str], references: list[str], labels: list[str | None],
          extra_references: list[list[str]] | None = None) -> dict[str, float]:
    """Mean of each configured metric (`answer_kl` is measured separately).

    `extra_references`: more acceptable answers per input (an input's `references` list);
    `rouge_l` and `exact_match_normalized` take the best over all of them, as the
    Natural-Instructions scorer behind the paper's hypothesis 1-2 figures does.
    Any failure is a `MetricError`: it comes after training, and the student is kept.
    """
    every = [[reference, *extra] for reference, extra in zip(references, extra_references or [[]] * len(references))]
    results = {}
    for metric in project.eval.metrics:
        if metric == "answer_kl":
            continue
        if metric == "exact_match":
            # An empty reference (the teacher gave no answer) never counts as matched.
            values = [float(bool(reference) and answer == reference) for answer, reference in zip(answers, references)]
        elif metric == "exact_match_normalized":
            values = [max(float(bool(ref) and normalize_answer(answer) == normalize_answer(ref)) for ref in refs)
                      for answer, refs in zip(answers, every)]
        elif metric == "accuracy":
            missing = sum(1 for label in labels if label is None)
            if missing:
                raise MetricError(f"`eval.metrics` has 'accuracy', which needs a label on every eval input, but "
                                  f"{missing} of {len(labels)} have none; add labels or remove 'accuracy'")
            values = [float(answer == label.strip()) for answer, label in zip(answers, labels)]
        elif metric == "rouge_l":
            values = rouge_l(answers, every)
        else:
            function = load_metric(project, metric)
            values = [metric_value(function, answer, reference) for answer, reference in zip(answers, references)]
        results[metric] = round(sum(values) / max(1, len(values)), 4)
    return results


def load_metric(project: Project, metric: str):
    """A `module:function(prediction, reference) -> float` metric of the project (MetricError when it cannot load)."""
    try:
        return load_callable(project.dir, metric, "eval.metrics", "function(prediction, reference)")
    except EngineError as error:
        raise MetricError(str(error)) from error


def metric_value(function, prediction: str, reference: str) -> float:
    """One call of a project's metric; what it raises or a value that is not a number is a MetricError."""
    try:
        value = function(prediction, reference)
    except EngineError as error:
        raise MetricError(str(error)) from error
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, str) or not math.isfinite(number):
        raise MetricError(f"{function.name} returned {value!r} ({type(value).__name__}) for "
                          f"prediction={prediction!r}, reference={reference!r}: expected a finite number, e.g. 1.0")
    return number


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(character for character in text.lower() if not unicodedata.category(character).startswith("P"))
    return " ".join(word for word in text.split() if word not in ("a", "an", "the"))


class UnicodeRougeTokenizer:
    """rouge-score's tokenizer keeps only [a-z0-9], so a non-ASCII answer scores 0 against itself.

    This one keeps every letter and digit of any script, lower-cased, and Porter-stems
    the ASCII words as rouge-score does with `use_stemmer=True` (the paper's scorer).
    """

    def __init__(self):
        from nltk.stem import porter

        self.stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        return [self.stemmer.stem(word) if word.isascii() and len(word) > 3 else word for word in words]


def rouge_l(predictions: list[str], references: list[list[str] | str]) -> list[float]:
    """Rouge-L F1, stemmed, best over each prediction's references (the Natural-Instructions scorer).

    Two texts without a word (an empty answer, a newline) agree: 1.0 by definition, where
    rouge-score says 0. So the teacher scored against itself is 1 even on a model that
    answers nothing (issue 26, item 5); an empty answer against a non-empty one stays 0.
    """
    from rouge_score import rouge_scorer

    tokenizer = UnicodeRougeTokenizer()
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer)

    def f1(reference: str, prediction: str) -> float:
        if not tokenizer.tokenize(reference) and not tokenizer.tokenize(prediction):
            return 1.0
        return scorer.score(reference, prediction)["rougeL"].fmeasure

    return [max(f1(reference, prediction) for reference in ([refs] if isinstance(refs, str) else refs))
            for prediction, refs in zip(predictions, references)]


# --- answer KL ----------------------------------------------------------------

@torch.no_grad()
def answer_kl(project: Project, student_model, tokenizer, inputs: list[dict], teacher: list[Decoded],
              batch_size: int = 16, per_input: list | None = None) -> float | None:
    """Mean KL(teacher with context || student without it) over the teacher's answer tokens.

    The teacher's distributions come from its own greedy decoding (logits kept);
    the student's from one forward pass over student prompt + the same answer ids.
    `per_input`, if given, is filled with each input's mean over its answer tokens
    (None where the teacher gave no answer), for the per-sample view.
    """
    from engine.training.student_forward import answer_logits
    from engine.training.data import DistillExample

    examples, teacher_rows, owners = [], [], []
    for index, (example, decoded) in enumerate(zip(inputs, teacher)):
        if decoded.span is None or decoded.answer_logits is None or decoded.span[1] == decoded.span[0]:
            continue
        owners.append(index)
        start, end = decoded.span
        prompt_ids = tokenizer(student_prompt(project, tokenizer, example)).input_ids
        answer_ids = decoded.output_ids[start:end]
        examples.append(DistillExample(prompt_ids + answer_ids, len(prompt_ids), [torch.zeros(1, dtype=torch.long)] * len(answer_ids),
                                       [torch.ones(1)] * len(answer_ids)))
        teacher_rows.append(decoded.answer_logits)
    if per_input is not None:
        per_input[:] = [None] * len(inputs)
    if not examples:
        return None
    total, count = 0.0, 0
    for first in range(0, len(examples), batch_size):
        batch = examples[first: first + batch_size]
        input_ids, attention_mask, targets = collate(batch, tokenizer.pad_token_id)
        # The LM head at the answer rows only: a real vocabulary makes whole-sequence logits gigabytes.
        student_logits = answer_logits(student_model, input_ids.to(student_model.device),
                                       attention_mask.to(student_model.device), targets.positions).float().cpu()
        teacher_logits = torch.cat(teacher_rows[first: first + batch_size]).float()
        kl = dense_kl(teacher_logits, student_logits)
        total += kl.sum().item()
        count += len(kl)
        if per_input is not None:
            for row, (owner, piece) in enumerate(zip(owners[first: first + batch_size],
                                                     kl.split([len(e.label_ids) for e in batch]))):
                per_input[owner] = round(piece.mean().item(), 5)
    return round(total / count, 5)


def mean(values) -> float:
    values = list(values)
    return round(sum(values) / max(1, len(values)), 2)


def sample_entry(decoded: Decoded, reference: str) -> dict:
    return {"prompt": decoded.prompt, "output": decoded.output, "answer": decoded.answer,
            "correct": bool(reference) and decoded.answer == reference}

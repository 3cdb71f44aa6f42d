"""What the teacher does with a project's prompts, before anything is trained.

`preview()` backs `ctxdistill preview`; `PreviewSession` backs the TUI's live
preview (one model load, streamed generation that can be cancelled).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from engine.project.schema import Project
from engine.evaluation.evaluate import decode
from engine.teacher.extractors import ExtractedAnswer, Extractor, direct_answer
from engine.models import load_model
from engine.project.sources import sample_inputs
from engine.teacher.teacher_pass import student_prompt, teacher_prompt, teacher_prompts


@dataclass
class PreviewItem:
    input: dict
    label: str | None
    teacher_prompt: str
    student_prompt: str
    teacher_tokens: int
    student_tokens: int
    teacher_output: str
    answer: str | None
    student_output: str
    ensemble_prompts: list[str] = field(default_factory=list)  # all `teacher.ensemble` prompts (the first is teacher_prompt)


def preview(project: Project, n: int) -> list[PreviewItem]:
    """Render both prompts for `n` held-out inputs and run the teacher (greedy) and student on them."""
    model, tokenizer = load_model(project.model, project.dir)
    inputs = sample_inputs(project, n, model, tokenizer)
    extractor = Extractor(project.extract, project.dir)
    teacher = decode(project, model, tokenizer, inputs, "teacher", extractor)
    student = decode(project, model, tokenizer, inputs, "student")
    items = []
    for example, t, s in zip(inputs, teacher, student):
        items.append(PreviewItem(example, example.get("label"), t.prompt, s.prompt, t.prompt_tokens, s.prompt_tokens,
                                 t.output, t.answer if t.span is not None else None, s.output,
                                 teacher_prompts(project, tokenizer, example)))
    return items


class PreviewSession:
    """A loaded model for interactive previews; safe to call from one worker thread at a time."""

    def __init__(self, project: Project):
        self.project = project
        self.model, self.tokenizer = load_model(project.model, project.dir)
        self.extractor = Extractor(project.extract, project.dir)

    def set_project(self, project: Project) -> None:
        """New templates/extractor/generation settings (the model stays loaded if it is the same)."""
        if project.model != self.project.model:
            self.model, self.tokenizer = load_model(project.model, project.dir)
        self.project = project
        self.extractor = Extractor(project.extract, project.dir)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text).input_ids)

    def prompts(self, example: dict) -> tuple[str, str]:
        return teacher_prompt(self.project, self.tokenizer, example), student_prompt(self.project, self.tokenizer, example)

    def ensemble_prompts(self, example: dict) -> list[str]:
        """All `teacher.ensemble` teacher prompts of one input (one without an ensemble)."""
        return teacher_prompts(self.project, self.tokenizer, example)

    def extract(self, text: str) -> ExtractedAnswer | None:
        return self.extractor.find(text)

    def direct_answer(self, text: str) -> str:
        return direct_answer(text, self.project.generate.stop)

    def stream_generate(self, prompt: str, should_stop: Callable[[], bool] = lambda: False,
                        greedy: bool = False) -> Iterator[str]:
        """Yield decoded pieces of the output as they are produced; stops early when `should_stop()`."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return should_stop()

        config = self.project.generate
        encoded = self.tokenizer(prompt, return_tensors="pt").to(self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = config.temperature > 0 and not greedy
        options = dict(max_new_tokens=config.max_new_tokens, do_sample=sampling, streamer=streamer,
                       pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=StoppingCriteriaList([Cancelled()]))
        if sampling:
            options.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k or None)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        if config.stop:
            options.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)

        def work():
            with torch.no_grad():
                self.model.generate(**encoded, **options)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            yield piece
            if should_stop():
                break
        thread.join()

    def greedy_generate(self, prompt: str) -> str:
        return "".join(self.stream_generate(prompt, greedy=True))

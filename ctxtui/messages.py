"""Messages that workers and widgets post: small dataclasses named for what happened.

High-frequency ones (`TeacherTextStreamed`, `RunProgressed`) implement
`can_replace`, so a fast generation or a fast run never floods the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class SampleInputsLoaded(Message):
    inputs: list[dict]
    error: str | None = None


@dataclass
class PreviewModelLoaded(Message):
    session: Any  # engine.preview.PreviewSession, or None when loading failed
    error: str | None = None


@dataclass
class PromptTokensCounted(Message):
    generation: int
    teacher_tokens: int
    student_tokens: int


@dataclass
class EnsemblePromptsRendered(Message):
    """The K teacher prompts of an ensemble for the previewed input (engine.teacher.teacher_pass.teacher_prompts)."""

    generation: int
    prompts: list[str]


@dataclass
class TeacherTextStreamed(Message):
    generation: int
    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TeacherTextStreamed) and message.generation == self.generation


@dataclass
class TeacherGenerationFinished(Message):
    generation: int
    text: str
    answer: Any  # engine ExtractedAnswer or None


@dataclass
class StudentOutputReady(Message):
    generation: int
    text: str
    answer: Any


@dataclass
class PreviewFailed(Message):
    generation: int
    error: str


@dataclass
class RunProgressed(Message):
    run_dir: Path
    state: Any  # engine.runs.events.RunState (a copy owned by the receiver)
    alive: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgressed) and message.run_dir == self.run_dir


@dataclass
class RunEnded(Message):
    run_dir: Path
    status: str


@dataclass
class RunLaunched(Message):
    run_dir: Path
    command: str


@dataclass
class ProjectChecked(Message):
    """`ctxdistill check`'s checks finished on the edited project (`App.check_result` holds what they found)."""

    problems: list
    warnings: list

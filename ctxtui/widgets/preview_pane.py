"""The live preview: the teacher's generation with the extracted answer, and the student's output.

The Author screen sets what to preview (`request(project, example)`); model work
(loading, token counts, generation, extraction) runs in thread workers that
only post messages, and a newer request cancels the older one. The model
picker runs the preview on the base model or on any saved student or
checkpoint of the project's runs ("Try the student", issue 12).
"""

from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Select, Static
from textual.worker import get_current_worker

from ctxtui import saved_models
from ctxtui.imports import HEAVY_IMPORTS
from ctxtui.messages import (EnsemblePromptsRendered, PreviewFailed, PreviewModelLoaded, PromptTokensCounted,
                             StudentOutputReady, TeacherGenerationFinished, TeacherTextStreamed)

PREVIEW_DELAY_S = 0.25  # let a burst of keystrokes settle before generating
SAVED_MODELS_POLL_S = 3.0  # how often the picker looks for newly saved students and checkpoints


def verdict(answer: str | None, label: str | None) -> tuple[str, str]:
    """(text, css class) for an answer checked against the input's label."""
    if label is None:
        return "no label", "-unknown"
    if answer is None:
        return "no answer extracted", "-wrong"
    if answer.strip() == str(label).strip():
        return "match", "-right"
    return "no match", "-wrong"


class PreviewPane(Vertical):
    """Teacher generation, student output, their verdicts, and which weights produce them."""

    HELP = """\
## Preview

The teacher template's generation (sampled) with the extracted answer
highlighted, and the student template's greedy output, each checked against the
input's label. **model** picks the weights: the base model, or a saved student
or checkpoint of one of this project's runs ("try the student").
"""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.session = None
        self.saved: list[saved_models.SavedModel] = []
        self.source: saved_models.SavedModel | None = None  # None: the base model
        self.project = None
        self.example: dict | None = None
        self.generation = 0
        self.teacher_text = ""
        self.teacher_done = False
        self.invalid_reason: str | None = None  # why the prompts cannot be rendered now (shown instead of output)
        self.streamed_updates = 0  # partial outputs shown while the teacher generates
        self._session_lock = threading.Lock()
        self._loaded = threading.Event()  # set once a load has finished, with a session or an error
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Select([("base model", saved_models.BASE)], value=saved_models.BASE, allow_blank=False,
                     compact=True, id="preview-model")
        yield Static("loading model…", id="teacher-output", classes="panel")
        yield Static("", id="teacher-verdict", classes="verdict")
        yield Static("", id="student-output", classes="panel")
        yield Static("", id="student-verdict", classes="verdict")

    def on_mount(self) -> None:
        self.query_one("#teacher-output").border_title = "teacher generation"
        self.query_one("#student-output").border_title = "student output"
        self.query_one("#preview-model").tooltip = "Which weights run the preview: the base model, or a saved run's"
        self.refresh_saved_models(force=True)
        # A run saves students and checkpoints while the app is open: list each once it is there (issue 20 item 10).
        self.set_interval(SAVED_MODELS_POLL_S, self.refresh_saved_models)

    def refresh_saved_models(self, force: bool = False) -> None:
        saved = saved_models.saved_models(self.app.project_dir)
        if saved == self.saved and not force:
            return  # unchanged: leave the picker (and its open menu) alone
        self.saved = saved
        picker = self.query_one("#preview-model", Select)
        current = picker.value
        options = [("base model", saved_models.BASE)] + [(saved.label, str(saved.path)) for saved in self.saved]
        picker.set_options(options)
        picker.value = current if current in dict((value, label) for label, value in options) else saved_models.BASE

    # -- attributes down ----------------------------------------------------

    def with_model(self, use, timeout: float = 600.0):
        """`use(model, tokenizer)` with the loaded model, from a worker thread: it waits for the
        load and for any generation in progress (a `fewshot` source invents inputs with it)."""
        if not self._loaded.wait(timeout) or self.session is None:
            raise RuntimeError("the model did not load (see the teacher generation pane)")
        with self._session_lock:
            return use(self.session.model, self.session.tokenizer)

    def load(self, project) -> None:
        """Load the picked weights for `project` (at start, and when another model is picked)."""
        self.session = None
        self._loaded.clear()
        self.query_one("#teacher-output", Static).update("loading model…")
        self.load_session(project, self.source)

    def request(self, project, example: dict) -> None:
        """Preview `example` with `project`, after the keystrokes settle."""
        self.project, self.example = project, example
        self.invalid_reason = None
        self.generation += 1
        self.workers.cancel_group(self, "preview")
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(PREVIEW_DELAY_S, self.start)

    def invalidate(self, reason: str) -> None:
        """The prompts cannot be rendered: drop the running generation and its stale verdicts."""
        self.generation += 1
        self.workers.cancel_group(self, "preview")
        if self._timer is not None:  # a preview asked for before the error must not start after it
            self._timer.stop()
            self._timer = None
        self.project = None
        self.invalid_reason = reason  # kept on screen until a valid request, even if the model loads meanwhile
        self.teacher_text, self.teacher_done = "", False
        self.query_one("#teacher-output", Static).update(reason)
        self.query_one("#student-output", Static).update("")
        for verdict_id in ("#teacher-verdict", "#student-verdict"):
            self.set_verdict(verdict_id, "", "-unknown")

    def extractor_changed(self, project) -> None:
        """Re-extract the finished generation at once; a running one restarts with the new extractor."""
        self.project = project
        if self.teacher_done and self.session is not None:
            self.reextract(self.generation, project, self.teacher_text)
        elif not self.teacher_done and self.example is not None:
            self.request(project, self.example)

    def start(self) -> None:
        self._timer = None
        if self.session is None or self.project is None or self.example is None:
            return
        self.teacher_text, self.teacher_done = "", False
        self.query_one("#teacher-output", Static).update("generating…")
        self.query_one("#student-output", Static).update("")
        for verdict_id in ("#teacher-verdict", "#student-verdict"):
            self.query_one(verdict_id, Static).update("")
        self.generate(self.generation, saved_models.project_for(self.project, self.source), self.example)

    # -- workers ------------------------------------------------------------

    @work(thread=True, exclusive=True, group="preview")
    def generate(self, generation: int, project, example: dict) -> None:
        worker = get_current_worker()
        session = self.session
        with self._session_lock:  # one generation at a time; a cancelled one stops at its next token
            if worker.is_cancelled:
                return
            try:
                session.set_project(project)
                # The engine's own prompts (with the chat template when the project asks for it).
                teacher_prompt, student_prompt = session.prompts(example)
                if getattr(project.teacher, "ensemble", 1) > 1:
                    # The engine samples from the first rendering and scores under all K (issue 7).
                    ensemble = session.ensemble_prompts(example)
                    self.post_message(EnsemblePromptsRendered(generation, list(ensemble)))
                    teacher_prompt = ensemble[0]
                self.post_message(PromptTokensCounted(
                    generation, session.count_tokens(teacher_prompt), session.count_tokens(student_prompt)))
                text = ""
                for piece in session.stream_generate(teacher_prompt, should_stop=lambda: worker.is_cancelled):
                    text += piece
                    self.post_message(TeacherTextStreamed(generation, text))
                if worker.is_cancelled:
                    return
                self.post_message(TeacherGenerationFinished(generation, text, session.extract(text)))
                student = session.greedy_generate(student_prompt)
                if not worker.is_cancelled:
                    self.post_message(StudentOutputReady(generation, student, session.direct_answer(student)))
            except Exception as error:  # a model error must show in the pane, not crash the app
                self.post_message(PreviewFailed(generation, f"{type(error).__name__}: {error}"))

    @work(thread=True, exclusive=True, group="extract")
    def reextract(self, generation: int, project, text: str) -> None:
        with self._session_lock:
            try:
                self.session.set_project(saved_models.project_for(project, self.source))
                answer = self.session.extract(text)
            except Exception as error:
                self.post_message(PreviewFailed(generation, f"{type(error).__name__}: {error}"))
                return
        self.post_message(TeacherGenerationFinished(generation, text, answer))

    @work(thread=True, exclusive=True, group="load-session")
    def load_session(self, project, source) -> None:
        try:
            with HEAVY_IMPORTS:
                session = saved_models.load_session(project, source)
        except Exception as error:
            self.post_message(PreviewModelLoaded(None, f"{type(error).__name__}: {error}"))
        else:
            self.post_message(PreviewModelLoaded(session))

    # -- messages from the workers ----------------------------------------------

    @on(Select.Changed, "#preview-model")
    def model_picked(self, event: Select.Changed) -> None:
        event.stop()
        source = next((saved for saved in self.saved if str(saved.path) == event.value), None)
        if source == self.source:
            return
        self.source = source
        name = "base model" if source is None else source.label
        self.query_one("#student-output").border_subtitle = name if source else ""
        self.query_one("#teacher-output").border_subtitle = name if source else ""
        project = self.project or self.app.project  # None while the template has an error
        if project is not None:
            self.load(project)

    def on_preview_model_loaded(self, message: PreviewModelLoaded) -> None:
        message.stop()
        self.session = message.session
        self._loaded.set()
        output = self.query_one("#teacher-output", Static)
        if message.session is None:
            output.update(Content(f"model failed to load: {message.error}"))
            return
        output.update(self.invalid_reason or "")
        self.start()

    def on_teacher_text_streamed(self, message: TeacherTextStreamed) -> None:
        message.stop()
        if message.generation == self.generation and not self.teacher_done:
            self.streamed_updates += 1
            self.teacher_text = message.text
            self.query_one("#teacher-output", Static).update(Content(message.text + "▍"))

    def on_teacher_generation_finished(self, message: TeacherGenerationFinished) -> None:
        message.stop()
        if message.generation != self.generation:
            return
        self.teacher_text, self.teacher_done = message.text, True
        answer, text = message.answer, message.text
        if answer is None:
            shown = Content(text)
        else:
            shown = Content.assemble(text[: answer.start], (text[answer.start: answer.end], "bold reverse"),
                                     text[answer.end:])
        self.query_one("#teacher-output", Static).update(shown)
        label = (self.example or {}).get("label")
        words, css = verdict(answer.text if answer else None, label)
        shown_answer = f"answer: {answer.text!r}  " if answer else ""
        self.set_verdict("#teacher-verdict", f"{shown_answer}{words}" + (f" (label {label!r})" if label else ""), css)

    def on_student_output_ready(self, message: StudentOutputReady) -> None:
        message.stop()
        if message.generation != self.generation:
            return
        self.query_one("#student-output", Static).update(Content(message.text))
        label = (self.example or {}).get("label")
        answer = message.answer if message.answer is not None else message.text
        words, css = verdict(answer, label)
        self.set_verdict("#student-verdict", f"answer: {answer.strip()!r}  {words}", css)

    def on_preview_failed(self, message: PreviewFailed) -> None:
        message.stop()
        if message.generation == self.generation:
            self.query_one("#teacher-output", Static).update(Content(f"preview failed: {message.error}"))

    def set_verdict(self, selector: str, text: str, css: str) -> None:
        widget = self.query_one(selector, Static)
        widget.update(Content(text))
        widget.set_classes(f"verdict {css}")

"""Author: edit the teacher and student templates and the extractor, with a live preview.

A project with `[[operations]]` (issue 7) lists them on the left; the editors
show the selected operation's templates, titled with the table they are
written to (the operation's own, or the top-level one it inherits), and the
preview runs that operation alone (`Project.for_operation`), an ensemble's K
teacher prompts included.

Rendering happens on every keystroke in the UI thread (Jinja is fast); the
model work is the `PreviewPane`'s (widgets/preview_pane.py), which this screen
tells what to preview. An input of your own joins the sample list (✎).
"""

from __future__ import annotations

import dataclasses

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from ctxtui.imports import HEAVY_IMPORTS
from ctxtui.messages import EnsemblePromptsRendered, ProjectChecked, PromptTokensCounted, SampleInputsLoaded
from ctxtui.project_file import EXTRACT_KINDS
from ctxtui.widgets.preview_pane import PreviewPane
from ctxtui.widgets.template_editor import TemplateEditor
from ctxtui.widgets.key_footer import KeyFooter
from engine.errors import TemplateError

SAMPLE_COUNT = 16


class AuthorScreen(Screen):
    """Templates side by side, an input picker, rendered prompts and a live preview."""

    CSS_PATH = "author.tcss"

    BINDINGS = [
        Binding("ctrl+o", "edit_externally", "Editor", tooltip="Edit the focused template in $EDITOR"),
        Binding("ctrl+r", "regenerate", "Regenerate", tooltip="Sample the teacher again for this input"),
        Binding("ctrl+down", "next_input", "Next input", show=False),
        Binding("ctrl+up", "previous_input", "Prev input", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []
        self.example: dict | None = None
        self.prompts: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        project_file = self.app.project_file
        operation = self.app.operation_index
        kind, parameter = project_file.extract(operation)
        yield Header()
        with Horizontal(id="templates"):
            yield OptionList(id="operations")
            yield TemplateEditor("teacher", project_file.template("teacher", operation), id="teacher-editor")
            yield TemplateEditor("student", project_file.template("student", operation), id="student-editor")
        with Horizontal(id="extract-row"):
            yield Static("extractor", classes="row-label")
            yield Select([(k, k) for k in EXTRACT_KINDS], value=kind if kind in EXTRACT_KINDS else "identity",
                         allow_blank=False, id="extract-kind", compact=True)
            yield Input(parameter, placeholder="pattern / marker / module:function", id="extract-parameter",
                        compact=True)
            yield Static("F5 all settings", classes="row-label", id="settings-hint")
        yield Static("", id="config-problems", markup=False)
        with Horizontal(id="bottom"):
            with Vertical(id="input-column"):
                yield Input(placeholder="your own input ⏎", id="free-input", compact=True)
                yield OptionList(id="inputs")
            with Vertical(id="prompts"):
                yield Static("", id="teacher-prompt", markup=False, classes="panel")
                yield Static("", id="student-prompt", markup=False, classes="panel")
                yield Static("", id="token-ratio")
            yield PreviewPane(id="preview")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#inputs").border_title = "sample inputs"
        self.query_one("#operations").border_title = "operations"
        self.query_one("#operations").HELP = (
            "## Operations\n\nThe project's distillation operations (`[[operations]]`). The editors show the "
            "selected one's templates; their titles name the table an edit is written to. An operation that "
            "inherits the top-level template shares it with every other that does: *Give this operation its "
            "own template* (command palette) copies it into the operation first.")
        self.show_operations()
        self.query_one("#teacher-prompt").border_title = "teacher prompt"
        self.query_one("#student-prompt").border_title = "student prompt"
        self.query_one("#free-input").HELP = (
            "## Your own input\n\nType an input of your own and press **enter**: it joins the sample list "
            "(marked ✎, without a label) and is previewed like the others.")
        self.query_one("#inputs").HELP = "## Sample inputs\n\nHeld-out inputs from the project's input distribution; the label, when present, follows the arrow. Pick one to render and preview it."
        self.query_one("#extract-parameter").HELP = "## Extractor\n\nThe regex pattern, the marker, or `module:function` of the answer extractor. The highlighted answer in the teacher generation updates as you type."
        self.revalidate()
        if self.app.project is not None:
            self.load_inputs(self.preview_project() or self.app.project)
            self.preview.load(self.app.project)
        else:
            self.preview.invalidate("fix the project file to load the model")
        self.query_one("#teacher-text").focus()

    @property
    def preview(self) -> PreviewPane:
        return self.query_one(PreviewPane)

    def on_screen_suspend(self) -> None:
        self._text_when_left = self.app.project_file.text()

    def on_screen_resume(self) -> None:
        # Settings (F5) may have changed the extractor or the operations meanwhile.
        if getattr(self, "_text_when_left", None) not in (None, self.app.project_file.text()):
            self.show_project_file()

    # -- operations -------------------------------------------------------------

    def show_operations(self) -> None:
        names = self.app.project_file.operation_names()
        picker = self.query_one("#operations", OptionList)
        picker.display = bool(names)
        picker.clear_options()
        picker.add_options([Option(Content(name)) for name in names])
        if not names:
            self.app.operation_index = None
        else:
            if self.app.operation_index is None or self.app.operation_index >= len(names):
                self.app.operation_index = 0
            picker.highlighted = self.app.operation_index
        self.show_owners()

    def operation_name(self) -> str | None:
        names = self.app.project_file.operation_names()
        index = self.app.operation_index
        return names[index] if index is not None and index < len(names) else None

    def show_owners(self) -> None:
        """Title each editor with the table an edit goes to."""
        project_file, index = self.app.project_file, self.app.operation_index
        name = self.operation_name()
        for editor in self.query(TemplateEditor):
            if name is None:
                editor.border_title = f"{editor.role} template"
                editor.border_subtitle = ""
                continue
            owner = project_file.template_owner(editor.role, index)
            editor.border_title = f"{editor.role} · {owner}"
            editor.border_subtitle = "" if owner.startswith("operations.") else f"{name} inherits it: shared"

    def show_project_file(self) -> None:
        """Put the project file's text for the selected operation in the editors (after a reload or a pick)."""
        project_file, index = self.app.project_file, self.app.operation_index
        self.show_operations()
        for editor in self.query(TemplateEditor):
            text = project_file.template(editor.role, index)
            if editor.text != text:
                editor.text_area.load_text(text)
        kind, parameter = project_file.extract(index)
        self.query_one("#extract-kind", Select).value = kind if kind in EXTRACT_KINDS else "identity"
        self.query_one("#extract-parameter", Input).value = parameter
        self.prompts = None
        self.revalidate()

    @on(OptionList.OptionHighlighted, "#operations")
    def operation_picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index == self.app.operation_index:
            return
        self.app.operation_index = event.option_index
        self.show_project_file()
        project = self.preview_project()
        if project is not None:
            self.load_inputs(project)  # an operation may draw its inputs from elsewhere

    def action_own_template(self, role: str) -> None:
        index = self.app.operation_index
        if index is None:
            self.notify("the project declares no operations", severity="warning")
            return
        if self.app.project_file.override_template(role, index):
            self.notify(f"{self.operation_name()} now has its own {role} template (unsaved)")
            self.app.refresh_title()
        self.show_owners()

    # -- state ----------------------------------------------------------------

    def revalidate(self) -> None:
        """Validate the edited project, render both prompts, and show any errors inline."""
        app = self.app
        index = app.operation_index
        editors = {e.role: e for e in self.query(TemplateEditor)}
        for role, editor in editors.items():
            app.project_file.set_template(role, editor.text, index)
        kind = self.query_one("#extract-kind", Select).value
        app.project_file.set_extract(str(kind), self.query_one("#extract-parameter", Input).value, index)
        app.revalidate_project()  # nothing launches from a project with problems
        self.render_prompts(editors)
        self.show_problems()

    def show_problems(self) -> None:
        problems = self.query_one("#config-problems", Static)
        shown = self.app.project_problems()
        fix = ["F6: rename or remove the unknown keys"] if any("unknown key `" in problem for problem in shown) else []
        problems.update("\n".join(shown + fix))
        problems.display = bool(shown)

    def on_project_checked(self, _message: ProjectChecked) -> None:
        self.show_problems()  # `ctxdistill check`'s findings arrive from a thread after the edit

    def preview_project(self):
        """The project the preview runs: the selected operation alone, with the editors' text."""
        project = self.app.project
        if project is None:
            return None
        name = self.operation_name()
        if name is not None and hasattr(project, "for_operation"):
            project = project.for_operation(name)
        # Unsaved edits to a `template_file` live only in the editors.
        editors = {e.role: e for e in self.query(TemplateEditor)}
        return dataclasses.replace(
            project,
            teacher=dataclasses.replace(project.teacher, template=editors["teacher"].text),
            student=dataclasses.replace(project.student, template=editors["student"].text))

    def render_prompts(self, editors: dict[str, TemplateEditor]) -> None:
        from engine.project.templates import render

        prompts = {}
        project = self.preview_project()
        for role, editor in editors.items():
            if self.example is None:
                editor.error = ""
                continue
            variables = dict(getattr(getattr(project, role, None), "vars", None) or {})
            try:
                prompts[role] = render(editor.text, role, {**variables, **self.example})
                editor.error = ""
            except TemplateError as error:
                editor.error = f"line {error.line}: {error.detail}" if error.line else error.detail
        self.app.template_errors = {role: editor.error for role, editor in editors.items() if editor.error}
        if self.example is None:
            return
        for role in ("teacher", "student"):
            self.query_one(f"#{role}-prompt", Static).update(prompts.get(role, "(template error)"))
        new_prompts = (prompts["teacher"], prompts["student"]) if len(prompts) == 2 else None
        if new_prompts is None:
            # A template error makes the last generation stale: never leave its verdict up.
            self.preview.invalidate("fix the template error to preview")
            self.prompts = None
            return
        if new_prompts != self.prompts:
            self.prompts = new_prompts
            self.show_token_counts(None, None)
            self.schedule_preview()

    def show_token_counts(self, teacher: int | None, student: int | None) -> None:
        teacher_panel = self.query_one("#teacher-prompt", Static)
        student_panel = self.query_one("#student-prompt", Static)
        if teacher is None or student is None:
            teacher_panel.border_subtitle = student_panel.border_subtitle = "… tokens"
            self.query_one("#token-ratio", Static).update("")
            return
        teacher_panel.border_subtitle = f"{teacher} tokens"
        student_panel.border_subtitle = f"{student} tokens"
        ratio = teacher / student if student else float("inf")
        self.query_one("#token-ratio", Static).update(
            f"tokens {teacher} → {student}: {ratio:.1f}× fewer")

    # -- preview --------------------------------------------------------------

    def schedule_preview(self) -> None:
        project = self.preview_project()
        if project is not None and self.example is not None and self.prompts is not None:
            self.preview.request(project, self.example)

    @work(thread=True, exclusive=True, group="load-inputs")
    def load_inputs(self, project) -> None:
        try:
            with HEAVY_IMPORTS:
                from engine.project.sources import sample_inputs

                if project.inputs.source != "fewshot":
                    inputs = sample_inputs(project, SAMPLE_COUNT)
            if project.inputs.source == "fewshot":
                # The model invents the inputs: the preview's, once loaded (its loader needs HEAVY_IMPORTS).
                inputs = self.preview.with_model(lambda model, tokenizer: sample_inputs(
                    project, SAMPLE_COUNT, model, tokenizer))
            self.post_message(SampleInputsLoaded(inputs))
        except Exception as error:
            self.post_message(SampleInputsLoaded([], f"{type(error).__name__}: {error}"))

    # -- message handlers -----------------------------------------------------

    def on_sample_inputs_loaded(self, message: SampleInputsLoaded) -> None:
        own = [example for example in self.inputs if example.get("own")]
        self.inputs = own + message.inputs
        self.show_inputs(message.error)
        if self.inputs:
            self.query_one("#inputs", OptionList).highlighted = 0

    def show_inputs(self, error: str | None = None) -> None:
        picker = self.query_one("#inputs", OptionList)
        picker.clear_options()
        for example in self.inputs:
            text = str(example.get("input", "")).replace("\n", " ")
            label = example.get("label")
            mark = "✎ " if example.get("own") else ""
            picker.add_option(Option(Content(mark + text + (f"  → {label}" if label is not None else ""))))
        if error:
            picker.add_option(Option(Content(f"inputs failed: {error}"), disabled=True))

    def on_prompt_tokens_counted(self, message: PromptTokensCounted) -> None:
        if message.generation == self.preview.generation:
            self.show_token_counts(message.teacher_tokens, message.student_tokens)

    def on_ensemble_prompts_rendered(self, message: EnsemblePromptsRendered) -> None:
        if message.generation != self.preview.generation:
            return
        count = len(message.prompts)
        shown = "\n".join(f"── teacher prompt {i + 1}/{count} ──\n{prompt}" for i, prompt in enumerate(message.prompts))
        panel = self.query_one("#teacher-prompt", Static)
        panel.update(shown)
        panel.border_title = f"teacher prompts (ensemble of {count})"

    @on(TemplateEditor.Edited)
    def template_edited(self) -> None:
        self.revalidate()

    @on(Select.Changed, "#extract-kind")
    @on(Input.Changed, "#extract-parameter")
    def extractor_edited(self) -> None:
        self.revalidate()
        project = self.preview_project()
        if project is not None:
            self.preview.extractor_changed(project)

    @on(Input.Submitted, "#free-input")
    def free_input_entered(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        self.inputs.insert(0, {"input": text, "own": True})
        self.show_inputs()
        self.query_one("#inputs", OptionList).highlighted = 0
        event.input.value = ""

    @on(OptionList.OptionHighlighted, "#inputs")
    def input_picked(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.inputs):
            self.example = self.inputs[event.option_index]
            self.prompts = None
            self.revalidate()

    # -- actions --------------------------------------------------------------

    def commands(self):
        yield SystemCommand("Regenerate preview", "Sample the teacher again for this input (ctrl+r)",
                            self.action_regenerate)
        yield SystemCommand("Edit template in $EDITOR", "The focused template, or the teacher's (ctrl+o)",
                            self.action_edit_externally)
        yield SystemCommand("Next sample input", "Preview the next input (ctrl+down)", self.action_next_input)
        if self.app.project_file.operation_names():
            for role in ("teacher", "student"):
                yield SystemCommand(f"Give this operation its own {role} template",
                                    "Copy the inherited top-level template into the selected operation",
                                    lambda role=role: self.action_own_template(role))
        yield SystemCommand("Previous sample input", "Preview the previous input (ctrl+up)",
                            self.action_previous_input)

    def action_regenerate(self) -> None:
        self.schedule_preview()

    def action_next_input(self) -> None:
        self.query_one("#inputs", OptionList).action_cursor_down()

    def action_previous_input(self) -> None:
        self.query_one("#inputs", OptionList).action_cursor_up()

    def action_edit_externally(self) -> None:
        focused = self.focused
        editor = next((node for node in (focused.ancestors_with_self if focused else [])
                       if isinstance(node, TemplateEditor)), None) or self.query_one("#teacher-editor", TemplateEditor)
        editor.edit_externally()

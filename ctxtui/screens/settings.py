"""Settings (F5): every table of project.toml as a form, validated as you type.

The left list holds the tables: the top level, each `[[operations]]` item and
its override tables, each `[[stages]]` item and its `[distill]`. The form shows
each key with its help (engine.project.schema's `help` metadata) and, under it, the
problems the engine reports for it: the very messages of `ctxdistill check`.
An empty field removes the key from the file, so the default (or, in an
operation or stage, the inherited top-level value) applies. Edits go into the
app's `ProjectFile` (comments kept) and are saved with ctrl+s like the
Author screen's.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from ctxtui.config_form import Section, Unparsable, field_specs, parse_text, problems_for, section_help, sections
from ctxtui.messages import ProjectChecked
from ctxtui.screens.choice import ChoiceScreen
from ctxtui.widgets.field_row import FieldRow
from ctxtui.widgets.key_footer import KeyFooter


class SectionList(OptionList):
    """The project's tables; keys here add and remove operations and stages."""

    HELP = """\
## Tables

Every table of `project.toml`. Pick one to edit its keys on the right.

- **o**: add an operation (`[[operations]]`)
- **t**: add a stage (`[[stages]]`)
- **delete**: remove the selected operation or stage (asks first)
- **/**: filter the list by name (a project with many operations); **escape** there clears it
"""

    BINDINGS = [
        Binding("o", "screen.add('operations')", "Add op"),
        Binding("t", "screen.add('stages')", "Add stage"),
        Binding("delete", "screen.remove", "Remove"),
        Binding("slash", "screen.filter", "Filter", show=False),  # the filter box says "(/)"
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]


class SettingsScreen(Screen):
    """Forms for the project's tables."""

    CSS_PATH = "settings.tcss"
    AUTO_FOCUS = "#sections"

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[Section] = []
        self.section: Section | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sections-column"):
            yield Input(placeholder="filter tables (/)", id="sections-filter", compact=True)
            yield SectionList(id="sections")
        with Vertical(id="form-column"):
            yield Static("", id="section-help", markup=False)
            yield VerticalScroll(id="form")
        yield Static("", id="settings-problems", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#sections").border_title = "tables"
        self.show_sections(0)

    def on_resize(self, event) -> None:
        """The table list widens with the terminal (issue 20 item 15): 22 columns at 80, up to 40."""
        self.styles.grid_columns = f"{max(22, min(40, event.size.width // 5))} 1fr"

    def on_screen_resume(self) -> None:
        # The Author screen or a reload may have changed the file: show it as it is now.
        index = self.query_one("#sections", OptionList).highlighted or 0
        self.section = None
        self.show_sections(index)

    def commands(self):
        yield SystemCommand("Add operation", "Append an [[operations]] table (o in the table list)",
                            lambda: self.action_add("operations"))
        yield SystemCommand("Add stage", "Append a [[stages]] table (t in the table list)",
                            lambda: self.action_add("stages"))
        yield SystemCommand("Remove operation or stage", "The selected one, after asking (delete)", self.action_remove)

    # -- the table list ---------------------------------------------------------

    def visible(self, found: list[Section]) -> list[Section]:
        """The tables whose title holds the filter's text (all of them without one)."""
        text = self.query_one("#sections-filter", Input).value.strip().lower()
        return [section for section in found if text in section.title.lower()] if text else found

    def show_sections(self, highlight: int) -> None:
        self.sections = self.visible(sections(self.app.project_file))
        picker = self.query_one("#sections", OptionList)
        picker.set_options([Option(Content(section.title)) for section in self.sections])
        picker.border_subtitle = f"{len(self.sections)} shown" if self.query_one("#sections-filter", Input).value else ""
        if not self.sections:
            return
        highlight = max(0, min(highlight, len(self.sections) - 1))
        if picker.highlighted == highlight:
            self.show_form(self.sections[highlight])
        picker.highlighted = highlight
        self.show_problems()

    @on(Input.Changed, "#sections-filter")
    def filter_changed(self) -> None:
        """Keep the table being edited selected when it is still shown."""
        self.show_sections(self.index_of(self.section, self.visible(sections(self.app.project_file))))

    @staticmethod
    def index_of(section: Section | None, shown: list[Section]) -> int:
        """Where `section` (by its place in the file) is in `shown`; 0 when it is not there."""
        paths = [found.path for found in shown]
        return paths.index(section.path) if section is not None and section.path in paths else 0

    @on(Input.Submitted, "#sections-filter")
    def filter_submitted(self) -> None:
        self.query_one("#sections").focus()

    def action_filter(self) -> None:
        self.query_one("#sections-filter", Input).focus()

    def key_escape(self) -> None:
        if self.query_one("#sections-filter", Input).has_focus:
            self.query_one("#sections-filter", Input).value = ""
            self.query_one("#sections").focus()

    @on(OptionList.OptionHighlighted, "#sections")
    def section_picked(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.sections):
            section = self.sections[event.option_index]
            if section != self.section:
                self.show_form(section)

    def show_form(self, section: Section) -> None:
        self.section = section
        project_file = self.app.project_file
        rows = []
        for spec in field_specs(section.cls):
            inherited = None
            if section.inherits is not None:
                inherited = project_file.value(section.inherits, spec.key)
                inherited = spec.default if inherited is None else inherited
            rows.append(FieldRow(spec, project_file.value(section.path, spec.key),
                                 dotted=f"{section.dotted}.{spec.key}" if section.dotted else spec.key,
                                 inherited=inherited))
        help_text = section_help(section)
        if section.path in (("teacher",), ("student",)) or section.path[-1:] in (("teacher",), ("student",)):
            help_text += "  The template itself is edited on the Author screen (F2)."
        self.query_one("#section-help", Static).update(f"[{section.dotted or 'top level'}]  {help_text}")
        form = self.query_one("#form", VerticalScroll)
        self.run_worker(self._replace_rows(form, rows), exclusive=True, group="form")

    async def _replace_rows(self, form: VerticalScroll, rows: list[FieldRow]) -> None:
        try:
            await form.remove_children()
            await form.mount_all(rows)
            form.scroll_home(animate=False)
            self.show_problems()
        except NoMatches:
            pass  # the app closed meanwhile

    # -- edits ------------------------------------------------------------------

    @on(FieldRow.Edited)
    def field_edited(self, event: FieldRow.Edited) -> None:
        row, section = event.row, self.section
        if section is None:
            return
        try:
            value = parse_text(row.spec, event.text)
        except Unparsable as error:
            row.show_problems([f"`{row.dotted}`: {error} (not written)"])
            return
        self.app.project_file.set_value(section.path, row.spec.key, value)
        self.app.revalidate_project()
        if row.spec.key == "name" and len(section.path) == 2:
            self.rename_sections()
        if row.spec.key == "kind" and section.path[-1:] == ("extract",):  # the other kind's keys left the file
            for other in self.query_one("#form").query(FieldRow):
                if other.spec.key != "kind" and self.app.project_file.value(section.path, other.spec.key) is None:
                    other.clear_value()
        self.show_problems()

    def rename_sections(self) -> None:
        """An operation or stage was renamed: new titles, and the keys its problems name."""
        picker = self.query_one("#sections", OptionList)
        renamed = self.visible(sections(self.app.project_file))
        if len(renamed) != picker.option_count:  # the new name left (or joined) the filtered list
            self.show_sections(self.index_of(self.section, renamed))
            return
        self.sections = renamed
        for index, section in enumerate(self.sections):
            picker.replace_option_prompt_at_index(index, Content(section.title))
        if picker.highlighted is not None:
            self.section = self.sections[picker.highlighted]
            for row in self.query(FieldRow):
                row.dotted = f"{self.section.dotted}.{row.spec.key}"

    def show_problems(self) -> None:
        app = self.app
        problems = app.project_problems()
        for row in self.query_one("#form").query(FieldRow):
            if not row.is_attached or row.parent is None:
                continue
            row.show_problems(problems_for(row.dotted, problems))
        panel = self.query_one("#settings-problems", Static)
        count = len(problems)
        checked_text, _, warnings = app.check_result
        checked = checked_text == app.project_file.text()
        if count:
            shown = f"{count} problem(s), as `ctxdistill check` reports them:\n" + "\n".join(problems)
        elif checked:
            shown = "no problems: `ctxdistill check` passes"
        else:
            shown = "the settings validate; checking inputs and code as `ctxdistill check` does…"
        fix = ["F6: rename or remove the unknown keys"] if any("unknown key `" in problem for problem in problems) else []
        panel.update("\n".join([shown, *fix, *(warnings if checked else [])]))
        panel.set_class(bool(count), "-error")

    def on_project_checked(self, _message: ProjectChecked) -> None:
        self.show_problems()

    # -- operations and stages --------------------------------------------------

    def action_add(self, array: str) -> None:
        project_file = self.app.project_file
        existing = project_file.operation_names() if array == "operations" else project_file.stage_names()
        stem = "op" if array == "operations" else "stage"
        number = len(existing) + 1
        while f"{stem}{number}" in existing:
            number += 1
        index = project_file.add_item(array, f"{stem}{number}")
        self.app.revalidate_project()
        self.query_one("#sections-filter", Input).value = ""  # the new one is shown and selected
        self.show_sections(next(i for i, section in enumerate(sections(project_file))
                                if section.path == (array, index)))
        self.notify(f"added {array[:-1]} {stem}{number} (unsaved); rename it in its `name` field")

    def action_remove(self) -> None:
        section = self.section
        if section is None or len(section.path) < 2:
            self.notify("select an operation or a stage to remove it", severity="warning")
            return
        array, index = section.path[0], section.path[1]
        name = section.title.split(" · ")[0]

        def answered(choice: str | None) -> None:
            if choice == "remove":
                self.app.project_file.remove_item(array, index)
                self.app.revalidate_project()
                self.section = None
                self.show_sections(0)
                self.notify(f"removed {name} (unsaved)")

        self.app.push_screen(ChoiceScreen(f"Remove {name} and all its tables?",
                                          [("cancel", "Cancel"), ("remove", "Remove it")],
                                          detail="Nothing is written until you save (ctrl+s)."), answered)

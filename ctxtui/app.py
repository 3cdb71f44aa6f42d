"""`ctxtui [PROJECT_DIR]`: the context-distillation workbench.

The app owns the project (its editable `project.toml` and the validated
`Project`) and which run is being watched; screens read those attributes and
report back with messages. Nothing is written to the project without the
user asking: quitting with unsaved edits asks (save / discard / cancel), a
save over a file changed by another editor asks, and so does saving a
project with problems (issue 12).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from ctxtui import file_actions, keys, runner
from ctxtui.checks import engine_check, template_syntax_problems
from ctxtui.messages import ProjectChecked, RunLaunched
from ctxtui.project_file import ProjectFile
from ctxtui.screens.author import AuthorScreen
from ctxtui.screens.choice import ChoiceScreen
from ctxtui.screens.results import ResultsScreen
from ctxtui.screens.run import RunScreen
from ctxtui.screens.runs import RunsScreen
from ctxtui.screens.settings import SettingsScreen
from engine.project.loader import project_from_toml_text
from engine.project.scaffold import TEMPLATES
from engine.versions import VersionAction
from engine.errors import ConfigError

DISK_CHECK_S = 2.0  # how often project.toml is compared with the file on disk
CHECK_DELAY_S = 0.5  # `ctxdistill check`'s checks run this long after the last edit
INDICATOR_S = 1.0


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ctxtui" / "settings.json"


def load_settings() -> dict:
    try:
        return json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return {}


def save_setting(key: str, value) -> None:
    settings = load_settings()
    settings[key] = value
    try:
        settings_path().parent.mkdir(parents=True, exist_ok=True)
        settings_path().write_text(json.dumps(settings, indent=2))
    except OSError:
        pass  # a read-only home only loses the preference


class CtxApp(App):
    """Author, Run, Results and Runs over one project folder."""

    TITLE = "ctxtui"
    # The `?` panel: narrow enough at 80 columns that the screen beside it stays readable.
    CSS = "HelpPanel { width: 30%; min-width: 24; max-width: 50; }"
    MODES = {"author": AuthorScreen, "run": RunScreen, "results": ResultsScreen, "runs": RunsScreen,
             "settings": SettingsScreen}
    DEFAULT_MODE = "author"

    BINDINGS = keys.BINDINGS  # the footer's choice of them: ctxtui/keys.py

    def __init__(self, project_dir: Path, *, attach: bool = True, start_mode: str = "author",
                 remember_theme: bool = False):
        self.DEFAULT_MODE = start_mode  # read by App.__init__: the first screen shown
        super().__init__()
        self.project_dir = Path(project_dir).resolve()
        self.project_file = ProjectFile(self.project_dir)
        self.project = None
        self.config_problems: list[str] = []
        self.template_errors: dict[str, str] = {}  # "teacher" / "student" -> the Author screen's render error
        # What `ctxdistill check` found, and for which text of project.toml (issue 20 item 5).
        self.check_result: tuple[str | None, list[str], list[str]] = (None, [], [])
        self._check_timer = None
        # The operation the Author screen edits (None: the project declares none).
        self.operation_index: int | None = 0 if self.project_file.operation_names() else None
        try:
            self.project = self.parse_project(self.project_file.text())
        except ConfigError as error:
            self.config_problems = list(error.problems)  # the Author screen shows them
        # The run the Run screen watches: a run still alive from an earlier session, if any.
        self.run_dir: Path | None = runner.find_running_run(self.project_dir) if attach else None
        self.results_run_dir: Path | None = None  # the run the Results screen shows
        self.live_run: Path | None = None  # the watched run while its process lives (the indicator)
        self._asked_about_disk_text: str | None = None
        self.remember_theme = remember_theme
        if remember_theme and load_settings().get("theme") in self.available_themes:
            self.theme = load_settings()["theme"]
        self.refresh_title()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """F-keys and ctrl+s do nothing behind an open dialog (a second ctrl+s stacks no second dialog); the
        footer names the screen keys on a wide terminal, groups them on a narrow one (issue 20 item 16)."""
        return keys.check(self, action)

    def on_resize(self) -> None:
        self.refresh_bindings()  # named or grouped screen keys

    def action_goto(self, mode: str) -> None:
        self.action_show_run() if mode == "run" else self.switch_mode(mode)

    def parse_project(self, text: str):
        return project_from_toml_text(self.project_dir, text)

    def on_mount(self) -> None:
        if self.run_dir is not None:
            self.notify(f"reattached to running run {self.run_dir.name} (F3)", title="Run")
        self.set_interval(DISK_CHECK_S, self.check_disk)
        self.schedule_check()
        self.set_interval(INDICATOR_S, self.refresh_run_indicator)
        self.refresh_run_indicator()
        if self.remember_theme:
            self.theme_changed_signal.subscribe(self, lambda theme: save_setting("theme", theme.name))

    def on_run_launched(self, message: RunLaunched) -> None:
        self.notify(message.command, title=f"launched {message.run_dir.name}", timeout=6)
        self.refresh_run_indicator()

    # -- title: unsaved marker and run indicator -----------------------------

    def refresh_title(self) -> None:
        name = self.project.name if self.project else self.project_dir.name
        self.title = f"ctxtui · {name}" + (" ● unsaved (ctrl+s)" if self.project_file.dirty else "")

    def refresh_run_indicator(self) -> None:
        """`▶ running: train 40/120` in the header of every screen while the watched run lives."""
        run_dir = self.run_dir
        if run_dir is None or not runner.run_alive(run_dir):
            self.live_run = None
            self.sub_title = ""
            return
        self.live_run = run_dir
        event = runner.last_event(run_dir) or {}
        if event.get("type") == "done":  # issue 20 item 12: never "running: done" while the process exits
            try:
                resumed = event.get("time", 0) < (run_dir / "pid").stat().st_mtime  # a new process, no event yet
            except OSError:
                resumed = False
            if not resumed:
                self.sub_title = ""
                return
            event = {}
        where = event.get("stage", "starting")
        if event.get("stage_name") and event.get("stage_name") != "main":
            where = f"{event['stage_name']} · {where}"
        if event.get("type") in ("progress", "train") and event.get("total_steps"):
            where += f" {event.get('step', 0)}/{event['total_steps']}"
        stopping = " (stop requested)" if (run_dir / "STOP").exists() else ""
        self.sub_title = f"▶ running: {where}{stopping}"

    # -- the project file on disk -------------------------------------------

    def check_disk(self) -> None:
        """Notice edits made to project.toml by another editor (timer, and when the terminal regains focus)."""
        if not self.project_file.changed_on_disk():
            return
        if not self.project_file.dirty:
            self.reload_project()
            self.notify("project.toml changed on disk: reloaded", title="Project")
            return
        disk_text = self._disk_text()
        if disk_text == self._asked_about_disk_text or self.screen.is_modal:
            return  # asked already about this version (or busy with another question)
        self._asked_about_disk_text = disk_text

        def answered(choice: str | None) -> None:
            if choice == "reload":
                self.reload_project()
                self.notify("reloaded project.toml; your unsaved edits were dropped", title="Project")
            else:
                self.notify("kept your edits; saving will ask before overwriting the file", title="Project")

        self.push_screen(ChoiceScreen(
            "project.toml was changed by another program, and you have unsaved edits here.",
            [("reload", "Reload from disk"), ("keep", "Keep my edits")],
            detail="Reload drops your edits. Keep leaves the file alone until you save (which asks again)."),
            answered)

    def on_app_focus(self) -> None:
        self.check_disk()

    def _disk_text(self) -> str:
        try:
            return self.project_file.path.read_text(encoding="utf-8")
        except OSError:
            return ""

    def reload_project(self) -> None:
        self.project_file.load()
        self._asked_about_disk_text = None
        try:
            self.project = self.parse_project(self.project_file.text())
            self.config_problems = []
        except ConfigError as error:
            self.config_problems = list(error.problems)
        self.refresh_title()
        self.schedule_check()
        if isinstance(self.screen, AuthorScreen):
            self.screen.show_project_file()

    def revalidate_project(self) -> None:
        """Validate the edited file as the CLI would; a project with problems is None (it cannot launch)."""
        try:
            self.project = self.parse_project(self.project_file.text())
            self.config_problems = []
        except ConfigError as error:
            self.project = None
            self.config_problems = list(error.problems)
        self.refresh_title()
        self.schedule_check()

    def project_problems(self) -> list[str]:
        """Why the edited project cannot run as it is: config errors, template errors, `ctxdistill check`'s."""
        problems = list(self.config_problems)
        if not problems and self.project is not None:
            problems += template_syntax_problems(self.project)
            if self.check_result[0] == self.project_file.text():
                problems += self.check_result[1]
        problems += [f"{role} template: {error}" for role, error in self.template_errors.items() if error]
        return list(dict.fromkeys(problems))

    # -- `ctxdistill check`, the one checker (issue 20 item 5) ---------------

    def schedule_check(self) -> None:
        """Run the engine's checks on the edited project once the edits pause."""
        if not self.is_running:
            return
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(CHECK_DELAY_S, self.start_check)

    def start_check(self) -> None:
        project, text = self.project, self.project_file.text()
        if project is not None and self.check_result[0] != text:
            self.run_worker(lambda: self._check(project, text), thread=True, exclusive=True, group="check")

    def _check(self, project, text: str) -> None:
        problems, warnings = engine_check(project)  # draws inputs with the project's code: never on the UI thread
        try:
            self.call_from_thread(self.checked, text, problems, warnings)
        except RuntimeError:
            pass  # the app closed while the check ran

    def checked(self, text: str, problems: list[str], warnings: list[str]) -> None:
        if text != self.project_file.text():
            return  # an older text's answer: the newer check is on its way
        self.check_result = (text, problems, warnings)
        self.screen.post_message(ProjectChecked(problems, warnings))

    async def check_now(self) -> tuple[list[str], list[str]]:
        """(problems, warnings) of the edited project as `ctxdistill check` reports them, checking it if needed."""
        text = self.project_file.text()
        if self.check_result[0] != text and self.project is not None:
            problems, warnings = await asyncio.to_thread(engine_check, self.project)
            self.checked(text, problems, warnings)
        return self.project_problems(), self.check_result[2] if self.check_result[0] == text else []

    # -- navigation -------------------------------------------------------

    def open_run(self, run_dir: Path) -> None:
        """Show `run_dir` on the Run screen (a live run, or a finished one's record)."""
        self.run_dir = Path(run_dir)
        self.switch_mode("run")  # the screen picks up `run_dir` when it mounts or resumes
        self.refresh_run_indicator()

    def open_results(self, run_dir: Path) -> None:
        self.results_run_dir = Path(run_dir)
        self.switch_mode("results")

    def action_show_run(self) -> None:
        """F3: the live run when there is one (not a finished run opened from Runs)."""
        live = runner.find_running_run(self.project_dir)
        if live is not None and live != self.run_dir:
            self.run_dir = live
        self.switch_mode("run")

    # -- saving and quitting ------------------------------------------------

    def action_save(self) -> None:
        self.run_worker(self.save_flow(), exclusive=True, group="ask")

    async def save_flow(self) -> bool:
        """Save, asking first about an outside edit and about problems; True when saved."""
        project_file = self.project_file
        if project_file.changed_on_disk():
            choice = await self.push_screen_wait(ChoiceScreen(
                "project.toml was changed by another program since it was loaded.",
                [("cancel", "Cancel"), ("overwrite", "Overwrite it"), ("reload", "Reload from disk")],
                detail="Overwrite replaces the other program's changes with this app's copy; reload drops your edits."))
            if choice == "reload":
                self.reload_project()
                return False
            if choice != "overwrite":
                return False
        problems = self.project_problems()
        if problems:
            choice = await self.push_screen_wait(ChoiceScreen(
                "The project has problems: a run of it would fail.",
                [("cancel", "Cancel"), ("save", "Save anyway")], detail="\n".join(problems[:8])))
            if choice != "save":
                return False
        project_file.save()
        self._asked_about_disk_text = None
        self.refresh_title()
        self.notify(f"saved {project_file.path.name}")
        return True

    async def action_quit(self) -> None:
        self.run_worker(self.quit_flow(), exclusive=True, group="ask")

    async def quit_flow(self) -> None:
        if self.live_run is not None:
            choice = await self.push_screen_wait(ChoiceScreen(
                f"Run {self.live_run.name} is still running.",
                [("quit", "Quit (the run goes on)"), ("cancel", "Cancel")],
                detail="The run outlives the app; start ctxtui again in this project to reattach."))
            if choice != "quit":
                return
        if self.project_file.dirty:
            choice = await self.push_screen_wait(ChoiceScreen(
                "project.toml has unsaved edits.",
                [("save", "Save and quit"), ("discard", "Discard and quit"), ("cancel", "Cancel")]))
            if choice == "cancel" or choice is None:
                return
            if choice == "save" and not await self.save_flow():
                return
        self.exit()

    def save_before_launch(self) -> bool:
        """Write pending edits so the run sees them; never over an outside edit (False then)."""
        if not self.project_file.dirty:
            return True
        if self.project_file.changed_on_disk():
            self.notify("project.toml was changed by another program: save (ctrl+s) first, then launch",
                        severity="error")
            return False
        self.project_file.save()
        self.refresh_title()
        self.notify("saved project.toml before launching")
        return True

    # -- other actions ------------------------------------------------------

    def action_fix_keys(self) -> None:
        self.run_worker(file_actions.fix_unknown_keys(self), exclusive=True, group="ask")

    def action_edit_file(self) -> None:
        file_actions.edit_in_editor(self)

    def action_workflow_help(self) -> None:
        from ctxtui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_new_project(self) -> None:
        from ctxtui.screens.new_project import NewProjectScreen

        def created(folder: Path | None) -> None:
            if folder is not None:
                self.run_worker(self.open_other_project(folder), exclusive=True, group="ask")

        self.push_screen(NewProjectScreen(Path.cwd()), created)

    async def open_other_project(self, folder: Path) -> None:
        """Leave this project (asking about unsaved edits) and let `main` open `folder`."""
        if self.project_file.dirty:
            choice = await self.push_screen_wait(ChoiceScreen(
                f"Open {folder}? project.toml here has unsaved edits.",
                [("save", "Save, then open"), ("discard", "Discard, then open"), ("cancel", "Cancel")]))
            if choice == "cancel" or choice is None:
                return
            if choice == "save" and not await self.save_flow():
                return
        self.exit(result=folder)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Author", "Edit templates and preview (F2)", lambda: self.switch_mode("author"))
        yield SystemCommand("Run", "Launch and watch a distillation run (F3)", self.action_show_run)
        yield SystemCommand("Results", "Before/after table and per-sample grid (F4)",
                            lambda: self.switch_mode("results"))
        yield SystemCommand("Runs", "The project's past runs (F8)", lambda: self.switch_mode("runs"))
        yield SystemCommand("Settings", "Every table of project.toml as a form, with help (F5)",
                            lambda: self.switch_mode("settings"))
        yield SystemCommand("Save project", "Write project.toml, keeping comments (ctrl+s)", self.action_save)
        yield SystemCommand("Reload project", "Read project.toml from disk again, dropping unsaved edits",
                            self.reload_project)
        yield SystemCommand("Fix unknown keys", "Rename each to the suggested key, or remove it (F6)",
                            self.action_fix_keys)
        yield SystemCommand("Edit project.toml in $EDITOR", "The file itself, read back after (ctrl+o)",
                            self.action_edit_file)
        yield SystemCommand("New project", "Create a project folder from a template and open it",
                            self.action_new_project)
        yield SystemCommand("Toggle light/dark", "Switch between the light and dark theme (ctrl+t)",
                            self.action_toggle_theme)
        yield SystemCommand("Help: workflow and keys", "What each screen is for, and every key (F1)",
                            self.action_workflow_help)
        yield SystemCommand("Help for focused widget", "Key map and what has focus (?)", self.action_toggle_help)
        yield from getattr(screen, "commands", lambda: [])()


KEYS_HELP = """\
keys (every screen):
  F1 workflow and keys   ? key map and help for the focused widget
  F2 Author   F3 Run (the live run)   F4 Results   F5 Settings   F8 Runs
  ctrl+p command palette (every action)   ctrl+s save project.toml   ctrl+t light/dark   ctrl+q quit
  F6 fix unknown keys (rename / remove)   ctrl+o project.toml in $EDITOR (on Author: the focused template)
Author: ctrl+o edit the focused template in $EDITOR, ctrl+r regenerate, ctrl+down/up next/previous input
Run: n new run, s stop (checkpoint first), k kill, r resume, o results
Results: f filter, m matrix metric, / search, enter sample detail   grids: j k g G
Settings: o add operation, t add stage, delete remove (in the table list)
Runs: enter dashboard, o results, space mark, c compare
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ctxtui", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The context-distillation workbench: author templates with a live preview, "
                    "run and watch a distillation, compare results.",
        epilog=KEYS_HELP + "\nWithout PROJECT_DIR: the project in the current folder, as for `ctxdistill run`; "
                           "where there is none, a chooser (open a project below it, or create one).\n"
                           "New project from the shell: ctxdistill init DIR --template " + "|".join(TEMPLATES))
    parser.add_argument("project_dir", type=Path, nargs="?", metavar="PROJECT_DIR",
                        help="a folder holding project.toml (default: the current folder)")
    parser.add_argument("--version", action=VersionAction)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Without a terminal Textual would wait for input forever (seen spinning at full CPU).
        print("ctxtui: needs an interactive terminal (stdin and stdout are not a TTY); "
              "for scripts use `ctxdistill run | preview | eval`", file=sys.stderr)
        return 2
    project_dir = args.project_dir
    if project_dir is not None and not (project_dir / "project.toml").exists():
        print(f"ctxtui: no project.toml in {project_dir} (a project is a folder holding one; "
              "create one with `ctxdistill init DIR`)", file=sys.stderr)
        return 2
    if project_dir is None and (Path.cwd() / "project.toml").exists():
        project_dir = Path.cwd()
    while True:
        if project_dir is None:
            from ctxtui.screens.chooser import ChooserApp

            project_dir = ChooserApp(Path.cwd()).run()
            if project_dir is None:
                return 0
        result = CtxApp(project_dir, remember_theme=True).run()
        if not isinstance(result, Path):  # "New project" returns the folder to open next
            return 0
        project_dir = result


if __name__ == "__main__":
    sys.exit(main())

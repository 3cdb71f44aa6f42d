"""`ctxtui [PROJECT_DIR]`: the context-distillation workbench.

The app owns the project (its editable `project.toml` and the validated
`Project`) and which run is being watched; screens read those attributes and
report back with messages. Quitting saves pending edits first, so no edit is
ever lost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ctxtui import runner
from ctxtui.messages import RunLaunched
from ctxtui.project_file import ProjectFile
from ctxtui.screens.author import AuthorScreen
from ctxtui.screens.results import ResultsScreen
from ctxtui.screens.run import RunScreen
from ctxtui.screens.runs import RunsScreen
from engine.config import project_from_toml_text
from engine.errors import ConfigError

DEFAULT_PROJECT = Path("sample_projects/instructions")


class CtxApp(App):
    """Author, Run, Results and Runs over one project folder."""

    TITLE = "ctxtui"
    MODES = {"author": AuthorScreen, "run": RunScreen, "results": ResultsScreen, "runs": RunsScreen}
    DEFAULT_MODE = "author"

    BINDINGS = [
        Binding("f1", "toggle_help", "Help", tooltip="Explain the focused widget"),
        Binding("f2", "switch_mode('author')", "Author", priority=True),
        Binding("f3", "switch_mode('run')", "Run", priority=True),
        Binding("f4", "switch_mode('results')", "Results", priority=True),
        Binding("f8", "switch_mode('runs')", "Runs", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, project_dir: Path, *, attach: bool = True, start_mode: str = "author"):
        self.DEFAULT_MODE = start_mode  # read by App.__init__: the first screen shown
        super().__init__()
        self.project_dir = Path(project_dir).resolve()
        self.project_file = ProjectFile(self.project_dir)
        self.project = None
        try:
            self.project = self.parse_project(self.project_file.text())
        except ConfigError:
            pass  # the Author screen shows the problems and lets the user fix them
        # The run the Run screen watches: a run still alive from an earlier session, if any.
        self.run_dir: Path | None = runner.find_running_run(self.project_dir) if attach else None
        self.results_run_dir: Path | None = None  # the run the Results screen shows
        self.sub_title = self.project.name if self.project else self.project_dir.name

    def parse_project(self, text: str):
        return project_from_toml_text(self.project_dir, text)

    def on_mount(self) -> None:
        if self.run_dir is not None:
            self.notify(f"reattached to running run {self.run_dir.name} (F3)", title="Run")

    def on_run_launched(self, message: RunLaunched) -> None:
        self.notify(message.command, title=f"launched {message.run_dir.name}", timeout=6)

    # -- navigation -------------------------------------------------------

    def open_run(self, run_dir: Path) -> None:
        """Show `run_dir` on the Run screen (a live run, or a finished one's record)."""
        self.run_dir = Path(run_dir)
        self.switch_mode("run")  # the screen picks up `run_dir` when it mounts or resumes

    def open_results(self, run_dir: Path) -> None:
        self.results_run_dir = Path(run_dir)
        self.switch_mode("results")

    # -- actions ----------------------------------------------------------

    def action_save(self) -> None:
        self.project_file.save()
        self.notify(f"saved {self.project_file.path.name}")

    def save_if_dirty(self) -> bool:
        if self.project_file.dirty:
            self.project_file.save()
            return True
        return False

    async def action_quit(self) -> None:
        self.save_if_dirty()
        self.exit()

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Author", "Edit templates and preview (F2)", lambda: self.switch_mode("author"))
        yield SystemCommand("Run", "Launch and watch a distillation run (F3)", lambda: self.switch_mode("run"))
        yield SystemCommand("Results", "Before/after table and per-sample grid (F4)",
                            lambda: self.switch_mode("results"))
        yield SystemCommand("Runs", "The project's past runs (F8)", lambda: self.switch_mode("runs"))
        yield SystemCommand("Save project", "Write project.toml, keeping comments (ctrl+s)", self.action_save)
        yield SystemCommand("Toggle light/dark", "Switch between the light and dark theme (ctrl+t)",
                            self.action_toggle_theme)
        yield SystemCommand("Help for focused widget", "Explain what has focus (F1)", self.action_toggle_help)
        yield from getattr(screen, "commands", lambda: [])()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: ctxtui [PROJECT_DIR]   (default: sample_projects/instructions)")
        return 0
    project_dir = Path(args[0]) if args else DEFAULT_PROJECT
    if not args and not project_dir.exists():  # not started from the repository root
        project_dir = runner.ENGINE_ROOT / DEFAULT_PROJECT
    if not (project_dir / "project.toml").exists():
        print(f"ctxtui: no project.toml in {project_dir} (a project is a folder holding one; "
              "see sample_projects/)", file=sys.stderr)
        return 2
    app = CtxApp(project_dir)
    try:
        app.run()
    finally:
        app.save_if_dirty()  # never lose an edit, however the app ended
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first screen when `ctxtui` starts outside a project: open one below here, or create one."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option

from ctxtui.screens.new_project import NewProjectScreen
from ctxtui.widgets.key_footer import KeyFooter

NEW = "\0new"


def find_projects(base: Path, depth: int = 2) -> list[Path]:
    """Folders holding a project.toml at most `depth` levels below `base` (run folders left out)."""
    found = []
    for level in range(1, depth + 1):
        for path in sorted(base.glob("/".join(["*"] * level) + "/project.toml")):
            if "runs" not in path.relative_to(base).parts:
                found.append(path.parent)
    return found


class ChooserApp(App[Path | None]):
    """Exits with the chosen project folder (None: quit)."""

    TITLE = "ctxtui"
    SUB_TITLE = "choose a project"
    BINDINGS = [Binding("n", "new_project", "New project"), Binding("ctrl+q,q", "quit", "Quit")]
    CSS = """
    #chooser-intro { padding: 1 2; }
    #projects { margin: 0 2; height: 1fr; border: round $primary; }
    """

    def __init__(self, base: Path):
        super().__init__()
        self.base = Path(base).resolve()
        self.projects = find_projects(self.base)

    def compose(self) -> ComposeResult:
        yield Header()
        intro = (f"No project.toml in {self.base}. Open a project below it, or create a new one."
                 if self.projects else f"No project in or below {self.base}: create one (n).")
        yield Static(intro, id="chooser-intro", markup=False)
        options = [Option(Content.styled("+ New project…", "bold"), id=NEW)]
        options += [Option(Content(str(path.relative_to(self.base))), id=str(path)) for path in self.projects]
        yield OptionList(*options, id="projects")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#projects", OptionList).highlighted = 1 if self.projects else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == NEW:
            self.action_new_project()
        else:
            self.exit(Path(str(event.option.id)))

    def action_new_project(self) -> None:
        def created(folder: Path | None) -> None:
            if folder is not None:
                self.exit(folder)

        self.push_screen(NewProjectScreen(self.base), created)

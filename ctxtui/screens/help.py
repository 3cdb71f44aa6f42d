"""F1: what each screen is for, in the order a distillation goes, and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ctxtui.widgets.key_footer import KeyFooter

WORKFLOW = """\
# The workflow

1. **Author (F2)**: write the teacher template (the long prompt to distill away)
   and the student template (the short one). The preview renders both for a
   sample input, counts their tokens, runs the teacher and highlights the answer
   the extractor keeps. A project with `[[operations]]` lists them on the left;
   the editor titles name the table an edit is written to.
2. **Run (F3)**: **n** launches a run (the project is saved first; a project with
   problems cannot launch). The dashboard shows the stage, counts, curves and,
   for a run with stages, which stage and operation run now. **s** stops after
   a checkpoint, **r** resumes, **k** kills (asks first). The run goes on if
   you quit; F3 shows the live run.
3. **Results (F4)**: teacher, student before and student after, with deltas
   (every Δ is later minus earlier), the overwrite matrix of a run with stages,
   and one row per held-out input: **f** filters, **/** searches, **enter**
   opens a sample.
4. **Runs (F8)**: every run of the project; **space** marks, **c** compares.

**Settings (F5)** edits every table of `project.toml` (and each operation and
stage) in a form with each key's help, checked as you type with the CLI's
messages. On Author, the **base model** picker runs the preview on a saved
student or checkpoint, and **your own input** adds an input to try.

# Keys

| key | where | does |
| --- | --- | --- |
| F1 | everywhere | this page |
| ? | everywhere but a text field | the key map and help for the focused widget |
| F2 F3 F4 F5 F8 | everywhere | Author, Run (the live run), Results, Settings, Runs |
| ctrl+p | everywhere | command palette: every action, searchable |
| ctrl+s | everywhere | save project.toml (asks if it changed on disk or has problems) |
| ctrl+q | everywhere | quit (asks about unsaved edits and a live run) |
| ctrl+t | everywhere | light / dark theme (remembered) |
| ctrl+o | Author | edit the focused template in `$EDITOR` |
| ctrl+r | Author | sample the teacher again |
| ctrl+down / ctrl+up | Author | next / previous sample input |
| n s r k o | Run | new run, stop, resume, kill, results |
| f / m / enter / x | Results | cycle filter, cycle matrix metric, sample detail, export CSV + JSON |
| n p | sample detail | next / previous sample of the grid |
| o t delete | Settings table list | add operation, add stage, remove one |
| j k g G | grids | down, up, top, bottom |
| enter o space c | Runs | dashboard, results, mark, compare |
| escape | dialogs | close / cancel |
"""


class HelpScreen(ModalScreen):
    """The workflow page and the key list."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: 90%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(WORKFLOW)
        yield KeyFooter()

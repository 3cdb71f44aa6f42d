"""One exception family for everything a user can cause.

The CLI shows an `EngineError` as its message alone, never a traceback
(unless `--debug`), so every message must say what to do.
"""


class EngineError(Exception):
    """A problem the user can fix: bad config, missing file, template error..."""


class ConfigError(EngineError):
    """One or more problems in a project file, all reported together."""

    def __init__(self, path, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        # A problem may run over several lines (a user's frames): they stay under its bullet.
        lines = "\n".join(f"  - {problem}".replace("\n", "\n    ") for problem in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s)\n{lines}")


class TemplateError(EngineError):
    """A template that does not parse or render (names the template and line)."""

    def __init__(self, template_name: str, message: str, line: int | None = None):
        self.template_name = template_name
        self.line = line
        self.detail = message
        where = f"{template_name} template" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {message}")


class ExtractionError(EngineError):
    """The answer extractor matched nothing in a teacher output."""


class UserCodeError(EngineError):
    """A project's own function (`tasks:fn`) raised, could not be imported, or returned the wrong thing.

    The message names the reference and the config key, and shows only the frames in the
    project's own files, never the engine's.
    """


class MetricError(EngineError):
    """Scoring failed after training (a metric that raises, labels that are missing).

    The trained student is kept; after fixing the project, `ctxdistill eval RUN_DIR` scores it again.
    """


class StopRequested(Exception):
    """Raised inside the recipe when a STOP file or signal asks it to stop."""

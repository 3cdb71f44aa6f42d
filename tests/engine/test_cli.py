"""The CLI's drawing: the before/after table and the progress lines (from events alone)."""

from __future__ import annotations

import io

from engine.cli import ProgressPrinter, format_table

METRICS = {
    "teacher": {"exact_match": 0.75, "tasks:digit_overlap": 0.5},
    "student_before": {"exact_match": 0.25, "tasks:digit_overlap": 0.125},
    "student_after": {"exact_match": 0.5, "tasks:digit_overlap": 0.375},
    "prompt_tokens": {"teacher": 40.0, "student": 16.0, "ratio": 2.5},
    "answer_kl": {"before": 1.2, "after": 0.4},
    "count": 4,
}


def test_format_table_keeps_every_column_apart():
    lines = format_table(METRICS).splitlines()
    header = lines[0].split()
    assert header == ["exact_match", "tasks:digit_overlap"]
    assert lines[3].split() == ["student_after", "0.500", "0.375"]
    assert "prompt tokens: teacher 40.0, student 16.0 (2.5x fewer)" in lines
    assert "answer-token KL(teacher || student): before 1.2, after 0.4" in lines
    assert lines[-1] == "held-out inputs: 4"


def test_progress_printer_draws_from_events():
    stream = io.StringIO()
    printer = ProgressPrinter(stream=stream)
    printer({"type": "status", "stage": "teacher", "message": "teacher generating 8 outputs"})
    printer({"type": "train", "stage": "train", "step": 4, "total_steps": 4, "loss": 1.5, "lr": 1e-3,
             "tokens_per_s": 100.0, "elapsed_s": 2.0, "eta_s": 0.0})
    out = stream.getvalue()
    assert "[teacher] teacher generating 8 outputs" in out
    assert "4/4 steps" in out and "loss 1.5000" in out and "#" * 30 in out


class WriteRecorder(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_an_error_line_is_one_write_so_processes_sharing_a_pipe_never_run_two_lines_together(tmp_path, monkeypatch):
    from engine.cli import main

    recorder = WriteRecorder()
    monkeypatch.setattr("sys.stderr", recorder)
    assert main(["check", str(tmp_path / "no-such-project")]) == 2
    (error_write,) = [text for text in recorder.writes if text.startswith("error: ")]
    assert error_write.endswith("\n") and "no project.toml here" in error_write  # the whole message, newline and all

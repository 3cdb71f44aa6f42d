"""Docs that cannot drift (issue 18, item 2): the project-file reference is the schema's, and every
`ctxdistill` command line in the README and docs/ names a real subcommand and real flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.project.reference import all_keys, reference

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "sample_projects").glob("*/README.md")), ROOT / "sample_projects" / "README.md"]


def test_the_project_file_reference_is_current():
    committed = (ROOT / "docs" / "project-file.md").read_text(encoding="utf-8")
    assert committed == reference(), "run: python -m engine.project.reference > docs/project-file.md"


def test_every_key_the_loader_accepts_is_in_the_reference():
    keys = set(all_keys())
    for key in ("model.name", "generate.max_batch_tokens", "distill.policy", "distill.lora.r", "eval.metrics",
                "operations.weight", "stages.teacher", "stages.distill.learning_rate"):
        assert key in keys
    # Every documented key loads: a project file setting it is not refused as unknown.
    from engine.project.schema import Project
    assert len(keys) > 60 and all("." in key or key in {f for f in Project.__dataclass_fields__} for key in keys)


def command_lines(page: Path) -> list[str]:
    """Shell lines that run ctxdistill, from the page's code blocks and inline code."""
    text = page.read_text(encoding="utf-8")
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append(line.strip().lstrip("$ ").strip())
        else:
            lines += re.findall(r"`(ctxdistill [^`]+)`", line)
    found = []
    for line in lines:
        line = line.split(" #")[0].strip()
        at = line.find("ctxdistill ")
        if at < 0 or "accelerate launch" in line:
            continue
        found.append(line[at:])
    return found


def check_command(line: str) -> str | None:
    """Why `line` is not a real command (None when it is): unknown subcommand or flag."""
    parser = build_parser()
    words = shlex.split(line.replace("...", "ARG"))[1:]
    subparsers = next(action for action in parser._actions if action.choices and isinstance(action.choices, dict))
    global_flags = {flag for action in parser._actions for flag in action.option_strings}
    while words and words[0].startswith("-"):
        if words[0] not in global_flags:
            return f"unknown global flag {words[0]}"
        words.pop(0)
    if not words:
        return None  # `ctxdistill --version`
    if words[0] not in subparsers.choices:
        return f"unknown subcommand {words[0]!r}"
    flags = {flag for action in subparsers.choices[words[0]]._actions for flag in action.option_strings}
    for word in words[1:]:
        if word.startswith("--") and word.split("=")[0] not in flags:
            return f"{words[0]}: unknown flag {word}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_ctxdistill_command_in_the_docs_is_real(page):
    if not page.exists():
        pytest.skip(f"{page.name} not written")
    problems = [f"{line!r}: {why}" for line in command_lines(page) if (why := check_command(line))]
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_made_up_flag_or_command():
    assert check_command("ctxdistill run PROJECT --seeds 3") is None
    assert check_command("ctxdistill --verbose run PROJECT") is None
    assert "unknown flag --fast" in check_command("ctxdistill run PROJECT --fast")
    assert "unknown subcommand 'train'" in check_command("ctxdistill train PROJECT")


def test_relative_links_in_the_docs_resolve():
    broken = []
    for page in PAGES:
        if not page.exists():
            continue
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "\n".join(broken)

"""Answer extractors: identity, regex, after_marker, callable from tasks.py; token spans."""

from __future__ import annotations

import pytest

from engine.project.schema import ExtractConfig
from engine.errors import EngineError
from engine.teacher.extractors import Extractor, answer_token_span, direct_answer, token_char_offsets

TASKS = '''
def final_number(text):
    import re
    found = re.findall(r"[0-9]+", text)
    return found[-1] if found else None


def span_after_equals(text):
    position = text.find("=")
    return None if position < 0 else (position + 1, len(text))


def broken(text):
    return 42
'''

OUTPUT = "Step 1: 3 + 4 = 7\nStep 2: 1 + 2 = 3\nAnswer: 37\nmore text"


def find(tmp_path, **options):
    (tmp_path / "tasks.py").write_text(TASKS)
    return Extractor(ExtractConfig(**options), tmp_path).find(OUTPUT)


def test_identity_is_the_whole_output_stripped(tmp_path):
    answer = Extractor(ExtractConfig(kind="identity"), tmp_path).find("  cba \n")
    assert (answer.text, answer.start, answer.end) == ("cba", 2, 5)
    unstripped = Extractor(ExtractConfig(kind="identity", strip=False), tmp_path).find("  cba \n")
    assert unstripped.text == "  cba \n"
    assert Extractor(ExtractConfig(kind="identity"), tmp_path).find("  \n") is None


def test_regex_takes_the_last_match_and_the_group(tmp_path):
    answer = find(tmp_path, kind="regex", pattern=r"= ([0-9]+)", group=1)
    assert answer.text == "3"
    assert OUTPUT[answer.start:answer.end] == "3" and answer.start == OUTPUT.index("= 3") + 2
    whole = find(tmp_path, kind="regex", pattern=r"Answer: [0-9]+")
    assert whole.text == "Answer: 37"
    assert find(tmp_path, kind="regex", pattern=r"Result: (\d+)", group=1) is None


def test_after_marker_stops_at_until(tmp_path):
    answer = find(tmp_path, kind="after_marker", marker="Answer:")
    assert answer.text == "37" and OUTPUT[answer.start:answer.end] == "37"
    to_end = find(tmp_path, kind="after_marker", marker="Answer:", until="")
    assert to_end.text == "37\nmore text"
    assert find(tmp_path, kind="after_marker", marker="Final:") is None
    last = Extractor(ExtractConfig(kind="after_marker", marker="A:"), tmp_path).find("A: 1\nA: 2\n")
    assert last.text == "2"


def test_callable_from_tasks_py(tmp_path):
    by_text = find(tmp_path, kind="callable", function="tasks:final_number")
    assert by_text.text == "37" and OUTPUT[by_text.start:by_text.end] == "37"
    by_span = find(tmp_path, kind="callable", function="tasks:span_after_equals")
    assert by_span.text == OUTPUT[OUTPUT.index("=") + 1:].strip()
    with pytest.raises(EngineError, match="expected \\(start, end\\)"):
        find(tmp_path, kind="callable", function="tasks:broken")
    with pytest.raises(EngineError, match="has no function 'missing'.*final_number"):
        find(tmp_path, kind="callable", function="tasks:missing")
    with pytest.raises(EngineError, match="no file"):
        find(tmp_path, kind="callable", function="nowhere:final_number")


def test_direct_answer_cuts_at_the_first_stop():
    assert direct_answer(" cba\nrest", ["\n"]) == "cba"
    assert direct_answer("cba", []) == "cba"


def test_token_span_covers_the_answer_and_its_terminator(char_tokenizer, tmp_path):
    text = "Work: 1+2\nAnswer: 3\n"
    ids = char_tokenizer(text).input_ids + [char_tokenizer.eos_token_id]
    assert token_char_offsets(char_tokenizer, ids) == list(range(len(text) + 1)) + [len(text)]
    answer = Extractor(ExtractConfig(kind="after_marker", marker="Answer:"), tmp_path).find(text)
    span = answer_token_span(char_tokenizer, ids, text, answer, stops=[])
    # "3", its "\n" terminator and the EOS after it.
    assert (span.start, span.end) == (text.index("3"), len(ids))
    assert char_tokenizer.decode(ids[span.start:span.end], skip_special_tokens=True) == "3\n"


def test_token_span_with_bpe_merged_tokens(bpe_tokenizer, tmp_path):
    text = "Reverse the letters.\nAnswer: the letters\n"
    ids = bpe_tokenizer(text).input_ids
    answer = Extractor(ExtractConfig(kind="after_marker", marker="Answer:"), tmp_path).find(text)
    span = answer_token_span(bpe_tokenizer, ids, text, answer, stops=[])
    # The answer begins with the token holding "the"; the space before it belongs to an earlier token
    # or is merged into the answer's first token, never dropped from the decoded answer.
    decoded = bpe_tokenizer.decode(ids[span.start:span.end])
    assert decoded.strip() == "the letters" and decoded.endswith("\n")
    assert bpe_tokenizer.decode(ids[:span.start]).endswith(("Answer:", "Answer: "))


def test_an_edited_tasks_py_is_reloaded(tmp_path):
    import os

    (tmp_path / "tasks.py").write_text("def pick(text):\n    return text[:1]\n")
    extractor = Extractor(ExtractConfig(kind="callable", function="tasks:pick"), tmp_path)
    assert extractor.find("abc").text == "a"
    # The TUI keeps one process while the user edits tasks.py: the next extractor sees the edit.
    (tmp_path / "tasks.py").write_text("def pick(text):\n    return text[-1:]\n")
    stat = (tmp_path / "tasks.py").stat()
    os.utime(tmp_path / "tasks.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert Extractor(ExtractConfig(kind="callable", function="tasks:pick"), tmp_path).find("abc").text == "c"

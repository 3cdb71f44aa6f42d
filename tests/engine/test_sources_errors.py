"""Input sources that go wrong (issue 11): encodings, malformed lines, wrong return types, counts a source cannot give."""

from __future__ import annotations

import json

import pytest

from engine.project.loader import project_from_toml_text
from engine.errors import EngineError, UserCodeError
from engine.project.sources import _population_estimate, load_inputs

BASE = '''
[inputs]
{inputs}
count = {count}

[teacher]
template = "T {{{{ input }}}}"

[student]
template = "{{{{ input }}}}"

[distill]
max_steps = 1

[eval]
count = {eval_count}
'''

TASKS = '''
import itertools


def endless(rng, n):
    for i in itertools.count():
        yield {"input": f"w{i}", "label": str(i)}


def strings(rng, n):
    return [f"s{i}" for i in range(n)]


def as_tuple(rng, n):
    return tuple({"input": f"t{i}"} for i in range(n))


def a_dict(rng, n):
    return {"input": "one"}


def a_string(rng, n):
    return "abc"


def none_input(rng, n):
    return [{"input": None}] * n


def ten(rng, n):
    return [str(rng.randrange(10)) for _ in range(n)]


def many(rng, n):
    return [str(i) for i in range(n)]
'''


def project(tmp_path, inputs: str, count=4, eval_count=2):
    (tmp_path / "tasks.py").write_text(TASKS)
    return project_from_toml_text(tmp_path, BASE.format(inputs=inputs, count=count, eval_count=eval_count))


def file_project(tmp_path, name: str, data: bytes, count=1, eval_count=1):
    (tmp_path / name).write_bytes(data)
    return project(tmp_path, f'source = "file"\npath = "{name}"', count, eval_count)


def test_latin1_jsonl_names_file_line_and_byte(tmp_path):
    data = '{"input": "abc"}\n{"input": "caf\u00e9"}\n'.encode("latin-1")
    with pytest.raises(EngineError) as raised:
        load_inputs(file_project(tmp_path, "pool.jsonl", data))
    message = str(raised.value)
    assert "pool.jsonl is not UTF-8 text: byte 0xe9 at byte offset 31 (line 2)" in message
    assert "iconv -f latin1 -t utf-8 pool.jsonl" in message


def test_latin1_csv_is_the_same_clear_error(tmp_path):
    data = "input,label\nabc,cba\ncaf\u00e9,x\n".encode("latin-1")
    with pytest.raises(EngineError, match=r"pool.csv is not UTF-8 text: .* \(line 3\)"):
        load_inputs(file_project(tmp_path, "pool.csv", data))


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    rows = "".join(json.dumps({"input": f"w{i}"}) + "\n" for i in range(3))
    distill, held_out = load_inputs(file_project(tmp_path, "pool.jsonl", b"\xef\xbb\xbf" + rows.encode()))
    assert {row["input"] for row in distill + held_out} <= {"w0", "w1", "w2"}
    csv_rows = "\ufeffinput,label\na,1\nb,2\n".encode()
    distill, held_out = load_inputs(file_project(tmp_path, "pool.csv", csv_rows))
    assert {row["input"] for row in distill + held_out} == {"a", "b"}


def test_a_jsonl_line_that_is_not_an_object_names_its_line(tmp_path):
    data = b'{"input": "a"}\n\n"just a string"\n'
    with pytest.raises(EngineError, match=r"pool.jsonl, line 3: expected a JSON object .* got 'just a string' \(str\)"):
        load_inputs(file_project(tmp_path, "pool.jsonl", data))


def test_a_csv_row_with_extra_fields_does_not_crash(tmp_path):
    data = b"text\nabc,extra\n"
    with pytest.raises(EngineError, match=r"not a column \(columns: text, None\)"):
        load_inputs(file_project(tmp_path, "pool.csv", data))


def test_an_endless_generator_gives_what_was_asked(tmp_path):
    distill, held_out = load_inputs(project(tmp_path, 'function = "tasks:endless"'))
    assert len(distill) == 4 and len(held_out) == 2


@pytest.mark.parametrize("function", ["strings", "as_tuple"])
def test_strings_and_tuples_are_inputs_too(tmp_path, function):
    distill, held_out = load_inputs(project(tmp_path, f'function = "tasks:{function}"'))
    assert len(distill) == 4 and all("input" in row for row in distill + held_out)


@pytest.mark.parametrize("function, shown", [("a_dict", "{'input': 'one'} (dict)"), ("a_string", "'abc' (str)")])
def test_a_wrong_return_type_says_what_came_back(tmp_path, function, shown):
    with pytest.raises(EngineError) as raised:
        load_inputs(project(tmp_path, f'function = "tasks:{function}"'))
    message = str(raised.value)
    assert message.startswith(f"`inputs.function` = 'tasks:{function}' returned {shown}: expected a list")


def test_an_input_of_none_is_a_bad_input(tmp_path):
    with pytest.raises(EngineError, match=r"returned a bad input \(#0\): \{'input': None\} \(dict\) has no `input` key"):
        load_inputs(project(tmp_path, 'function = "tasks:none_input"'))


def test_a_count_the_source_cannot_reach_fails_fast_with_an_estimate(tmp_path):
    with pytest.raises(EngineError) as raised:
        load_inputs(project(tmp_path, 'function = "tasks:ten"', count=100_000))
    message = str(raised.value)
    assert "gave 10 unique inputs in a draw of 20,000" in message and "about 10 distinct inputs" in message
    assert not isinstance(raised.value, UserCodeError)


def test_a_large_count_the_source_can_reach_is_drawn(tmp_path):
    distill, held_out = load_inputs(project(tmp_path, 'function = "tasks:many"', count=30_000, eval_count=10))
    assert len(distill) == 30_000 and len(held_out) == 10


def test_population_estimate():
    assert _population_estimate(20_000, 10) == 10
    assert 900 <= _population_estimate(20_000, 1000) <= 1100
    assert 9_000 <= _population_estimate(20_000, 8647) <= 11_000  # 20k uniform draws from 10k things

"""Raw task input sources: python generator, JSONL and CSV files; disjoint splits; clear errors."""

from __future__ import annotations

import json

import pytest

from engine.project.loader import project_from_toml_text
from engine.errors import EngineError
from engine.project.sources import load_inputs, sample_inputs

from engine_fixtures import TASKS_PY

BASE = '''
[inputs]
{inputs}
count = {count}
seed = {seed}

[teacher]
template = "T {{{{ input }}}}"

[student]
template = "{{{{ input }}}}"

[distill]
max_steps = 1

[eval]
count = {eval_count}
'''


def project(tmp_path, inputs: str, count=20, eval_count=10, seed=0):
    (tmp_path / "tasks.py").write_text(TASKS_PY)
    return project_from_toml_text(tmp_path, BASE.format(inputs=inputs, count=count, eval_count=eval_count, seed=seed))


def test_python_generator_gives_disjoint_seeded_sets(tmp_path):
    config = 'source = "python"\nfunction = "tasks:reverse_inputs"'
    distill, held_out = load_inputs(project(tmp_path, config))
    assert len(distill) == 20 and len(held_out) == 10
    distill_words = {row["input"] for row in distill}
    assert len(distill_words) == 20
    assert not distill_words & {row["input"] for row in held_out}
    assert all(row["label"] == row["input"][::-1] for row in distill + held_out)
    # Same seed, same sets; another seed, other sets.
    assert load_inputs(project(tmp_path, config)) == (distill, held_out)
    assert load_inputs(project(tmp_path, config, seed=1))[0] != distill
    # Previews come from the held-out part, never from the distillation set.
    preview = sample_inputs(project(tmp_path, config), 3)
    assert preview == held_out[:3]


def test_jsonl_file_with_custom_fields(tmp_path):
    rows = [{"question": f"q{i}", "answer": i, "extra": "x"} for i in range(12)]
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    config = 'source = "file"\npath = "pool.jsonl"\ninput_field = "question"\nlabel_field = "answer"'
    distill, held_out = load_inputs(project(tmp_path, config, count=8, eval_count=4))
    assert len(distill) == 8 and len(held_out) == 4
    all_rows = distill + held_out
    assert sorted(row["input"] for row in all_rows) == sorted(f"q{i}" for i in range(12))
    assert all(row["label"] == row["input"][1:] and row["extra"] == "x" for row in all_rows)  # labels as strings


def test_csv_file(tmp_path):
    lines = ["input,label"] + [f"word{i},{i}" for i in range(6)]
    (tmp_path / "pool.csv").write_text("\n".join(lines) + "\n")
    distill, held_out = load_inputs(project(tmp_path, 'source = "file"\npath = "pool.csv"', count=4, eval_count=2))
    assert {row["input"] for row in distill + held_out} == {f"word{i}" for i in range(6)}
    assert not {row["input"] for row in distill} & {row["input"] for row in held_out}
    assert all(row["label"] == row["input"][4:] for row in distill + held_out)


def test_too_few_unique_inputs_is_a_clear_error(tmp_path):
    config = 'source = "python"\nfunction = "tasks:few_inputs"'
    with pytest.raises(EngineError) as raised:
        load_inputs(project(tmp_path, config, count=5, eval_count=2))
    message = str(raised.value)
    assert "only 2 unique inputs" in message and "= 7" in message and "lower the counts" in message


def test_duplicates_in_a_file_do_not_leak_into_eval(tmp_path):
    rows = [{"input": f"w{i % 5}"} for i in range(40)]  # 5 unique inputs, each 8 times
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    distill, held_out = load_inputs(project(tmp_path, 'source = "file"\npath = "pool.jsonl"', count=3, eval_count=2))
    assert not {row["input"] for row in distill} & {row["input"] for row in held_out}
    with pytest.raises(EngineError, match="only 5 unique inputs"):
        load_inputs(project(tmp_path, 'source = "file"\npath = "pool.jsonl"', count=4, eval_count=2))


def test_file_errors_name_the_problem(tmp_path):
    with pytest.raises(EngineError, match="no such file"):
        load_inputs(project(tmp_path, 'source = "file"\npath = "missing.jsonl"'))
    (tmp_path / "bad.jsonl").write_text('{"input": "a"}\n{not json}\n')
    with pytest.raises(EngineError, match="bad.jsonl, line 2: not valid JSON"):
        load_inputs(project(tmp_path, 'source = "file"\npath = "bad.jsonl"'))
    (tmp_path / "pool.csv").write_text("text,label\na,b\n")
    with pytest.raises(EngineError, match="`inputs.input_field` = 'input': not a column \\(columns: text, label\\)"):
        load_inputs(project(tmp_path, 'source = "file"\npath = "pool.csv"'))
    (tmp_path / "pool.txt").write_text("a\n")
    with pytest.raises(EngineError, match="expected a .jsonl or .csv"):
        load_inputs(project(tmp_path, 'source = "file"\npath = "pool.txt"'))


def test_generator_problems_name_the_key(tmp_path):
    with pytest.raises(EngineError, match="`inputs.function` = 'tasks:nope': tasks.py has no function 'nope'"):
        load_inputs(project(tmp_path, 'source = "python"\nfunction = "tasks:nope"'))


def test_label_function_labels_every_source(tmp_path):
    (tmp_path / "labels.py").write_text(
        "def label(x):\n    return None if x.startswith('z') else x.upper()\n"
        "def bad(x):\n    return 3\n")
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"input": w, "label": "stale"}) + "\n"
                                                 for w in ["ab", "cd", "ef", "zz"]))
    config = 'source = "file"\npath = "pool.jsonl"\nlabel_function = "labels:label"'
    distill, held_out = load_inputs(project(tmp_path, config, count=2, eval_count=1))
    labels = {row["input"]: row.get("label") for row in distill + held_out}
    # The function's label wins over the file's; None drops the input.
    assert labels == {"ab": "AB", "cd": "CD", "ef": "EF"}
    with pytest.raises(EngineError, match="gave only 3 unique inputs"):
        load_inputs(project(tmp_path, config, count=2, eval_count=2))
    with pytest.raises(EngineError, match=r"label_function.*returned 3.*expected a string, or None"):
        load_inputs(project(tmp_path, config.replace("labels:label", "labels:bad"), count=2, eval_count=2))


def test_label_function_reference_is_checked(tmp_path):
    with pytest.raises(EngineError, match="inputs.label_function"):
        project(tmp_path, 'source = "python"\nfunction = "tasks:reverse_inputs"\nlabel_function = "no colon"')

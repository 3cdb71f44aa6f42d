"""project.toml errors and template errors: every message says what to do."""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.project.loader import load_project, project_from_toml_text
from engine.project.schema import field_help
from engine.errors import ConfigError, TemplateError
from engine.project.templates import render, render_prompts

GOOD = '''
name = "good"

[model]
name = "some-model"

[inputs]
function = "tasks:make"

[teacher]
template = "Be brief.\\n{{ input }}"

[student]
template = "{{ input }}"

[distill]
max_steps = 3
'''


def test_a_good_project_loads_with_defaults(tmp_path):
    project = project_from_toml_text(tmp_path, GOOD)
    assert project.name == "good"
    assert project.distill.max_steps == 3
    assert project.distill.labels == "sampled" and project.distill.num_samples == 100
    assert project.dir == tmp_path.resolve()
    assert render_prompts(project, {"input": "x"}) == ("Be brief.\nx", "x")
    assert field_help("distill.labels").startswith("Soft labels")


def problems_of(tmp_path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        project_from_toml_text(tmp_path, text)
    return raised.value


def test_misspelled_key_suggests_the_nearest(tmp_path):
    error = problems_of(tmp_path, GOOD.replace("max_steps = 3", "max_setps = 3\nmax_steps = 3"))
    assert error.problems == ["unknown key `distill.max_setps`; did you mean `distill.max_steps`?"]
    assert str(tmp_path / "project.toml") in str(error)


def test_misspelled_table_suggests_the_nearest(tmp_path):
    error = problems_of(tmp_path, GOOD + "\n[distil]\nseed = 1\n")
    assert any("`distil`" in problem and "did you mean `distill`" in problem for problem in error.problems)


def test_wrong_type_names_key_value_and_expected(tmp_path):
    error = problems_of(tmp_path, GOOD.replace("max_steps = 3", 'max_steps = "three"'))
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert "`distill.max_steps`" in problem and "'three'" in problem and "expected an integer" in problem


def test_bad_choice_suggests_a_valid_one(tmp_path):
    error = problems_of(tmp_path, GOOD.replace("max_steps = 3", 'max_steps = 3\nlabels = "topK"'))
    (problem,) = error.problems
    assert "`distill.labels` = 'topK'" in problem and "did you mean 'topk'" in problem


def test_all_problems_are_reported_at_once(tmp_path):
    text = GOOD.replace("max_steps = 3", 'max_steps = 3\nlearning_rate = "fast"\nbatch_sise = 4') \
               .replace('name = "some-model"', 'name = "some-model"\ndtype = 16')
    error = problems_of(tmp_path, text)
    assert len(error.problems) == 3, error.problems
    message = str(error)
    assert "3 problem(s)" in message
    assert "`distill.learning_rate` = 'fast': expected a number" in message
    assert "did you mean `distill.batch_size`" in message
    assert "`model.dtype` = 16" in message


def test_cross_field_rules_name_the_keys(tmp_path):
    error = problems_of(tmp_path, GOOD.replace("max_steps = 3", "max_steps = 3\nepochs = 2"))
    assert error.problems == ["set `distill.epochs` or `distill.max_steps`, not both"]
    error = problems_of(tmp_path, GOOD.replace('[extract]', '').replace("[distill]", '[extract]\nkind = "regex"\n\n[distill]'))
    assert error.problems == ["`extract.kind` = 'regex' needs `extract.pattern`"]


def test_missing_template_says_how_to_write_one(tmp_path):
    error = problems_of(tmp_path, GOOD.replace('template = "{{ input }}"', ""))
    (problem,) = error.problems
    assert "`student.template` is missing" in problem


def test_bad_toml_gives_a_clear_message(tmp_path):
    error = problems_of(tmp_path, GOOD + "\n[distill\n")
    (problem,) = error.problems
    assert problem.startswith("not valid TOML") and "line" in problem


def test_missing_project_file(tmp_path):
    with pytest.raises(ConfigError, match="no project.toml here"):
        load_project(tmp_path)


def test_template_with_undefined_variable_names_template_variable_and_line():
    source = "Instructions.\nMore.\nInput: {{ inptu }}\n"
    with pytest.raises(TemplateError) as raised:
        render(source, "teacher", {"input": "abc", "label": "cba"})
    error = raised.value
    assert error.template_name == "teacher"
    assert error.line == 3
    message = str(error)
    assert message.startswith("teacher template, line 3:")
    assert "inptu" in message and "input, label" in message


def test_template_syntax_error_names_template_and_line():
    with pytest.raises(TemplateError) as raised:
        render("ok\n{{ input ", "student", {"input": "x"})
    assert raised.value.template_name == "student" and raised.value.line == 2
    assert str(raised.value).startswith("student template, line 2:")


def test_templates_keep_whitespace_exactly():
    assert render("Output: ", "student", {"input": "x"}) == "Output: "
    assert render("{{ input }}\n\n", "student", {"input": "x"}) == "x\n\n"


def test_cli_bad_project_prints_error_and_exits_2(tmp_path, capsys):
    (tmp_path / "project.toml").write_text(GOOD.replace("max_steps = 3", "max_setps = 3"))
    assert main(["run", str(tmp_path), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert "did you mean `distill.max_steps`" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "runs").exists()


def test_cli_bad_project_subprocess_has_no_traceback(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "project.toml").write_text("[model\n")
    result = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path), "--quiet"],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_template_wraps_prompts(bpe_tokenizer):
    from copy import deepcopy

    from engine.project.templates import apply_chat_template

    tokenizer = deepcopy(bpe_tokenizer)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert apply_chat_template(tokenizer, "Reverse: abc") == "<user>Reverse: abc</user><assistant>"


def test_chat_template_on_a_tokenizer_without_one_is_a_clear_error(bpe_tokenizer):
    from engine.errors import EngineError
    from engine.project.templates import apply_chat_template

    assert bpe_tokenizer.chat_template is None
    with pytest.raises(EngineError, match="`model.chat_template` = true.*no chat template"):
        apply_chat_template(bpe_tokenizer, "Reverse: abc")


def test_cli_debug_raises_the_error_itself(tmp_path):
    (tmp_path / "project.toml").write_text(GOOD.replace("max_steps = 3", "max_setps = 3"))
    with pytest.raises(ConfigError, match="max_setps"):
        main(["--debug", "run", str(tmp_path), "--quiet"])

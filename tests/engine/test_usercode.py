"""A project's own code (issue 11): references stay inside the project, failures show the user's frames only."""

from __future__ import annotations

import random

import pytest

from engine.checks import preflight, preflight_problems
from engine.project.loader import project_from_toml_text
from engine.errors import ConfigError, EngineError, MetricError, UserCodeError
from engine.evaluation.evaluate import references_for, score
from engine.teacher.extractors import Extractor
from engine.project.schema import ExtractConfig
from engine.models import load_model, remote_code_warning, resolve_device
from engine.project.usercode import load_callable, reference_problem

PROJECT = '''
[inputs]
function = "tasks:make"
count = 4

[teacher]
template = "T {{ input }}"

[student]
template = "{{ input }}"

[distill]
max_steps = 1

[eval]
count = 2
metrics = {metrics}
reference = "{reference}"
'''

TASKS = '''
def shout(text):
    return text.upper() + undefined_name


def make(rng, n):
    return [{"input": f"w{i}", "label": f"w{i}"} for i in range(n)]


def unlabelled(rng, n):
    return [{"input": f"w{i}"} for i in range(n)]


def calls_helper(text):
    return shout(text)


def type_error_inside(text):
    return len(text) + "1"


def uses_json(text):
    import json
    return json.loads(text)


def match(prediction, reference):
    return float(prediction == reference)


def boom(prediction, reference):
    raise RuntimeError("metric broke")
'''

HELPER = '''
def shout(text):
    return text.upper()
'''


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "text.py").write_text(HELPER)
    return tmp_path


def make_project(folder, metrics='["exact_match"]', reference="label", function="tasks:make"):
    text = PROJECT.replace("{metrics}", metrics).replace("{reference}", reference).replace("tasks:make", function)
    return project_from_toml_text(folder, text)


@pytest.mark.parametrize("reference", ["tasks:make", "helpers.text:shout", "_private:f2"])
def test_module_references_inside_the_project_are_accepted(reference):
    assert reference_problem(reference, "inputs.function") is None


@pytest.mark.parametrize("reference", [".tmp.x:fn", "../x:fn", "a/b:fn", "/abs/x:fn", "..x:fn", "pkg..mod:fn", "a\\b:fn"])
def test_module_references_that_leave_the_project_are_refused(reference):
    problem = reference_problem(reference, "inputs.function")
    assert problem.startswith(f"`inputs.function` = {reference!r}") and "leave the folder" in problem


@pytest.mark.parametrize("reference", ["tasks", "tasks:", ":fn", "tasks:fn-x", "9tasks:fn"])
def test_malformed_references_say_what_is_expected(reference):
    assert "expected `module:function`" in reference_problem(reference, "extract.function")


def test_a_dotted_module_loads_from_a_subfolder(folder):
    function = load_callable(folder, "helpers.text:shout", "extract.function", "function(text)")
    assert function.name == "`extract.function` = 'helpers.text:shout'"


def test_a_failure_shows_every_project_frame_and_no_engine_frame(folder):
    """tasks.py line numbers: TASKS starts with an empty line."""
    function = load_callable(folder, "tasks:calls_helper", "extract.function", "function(text)")
    with pytest.raises(UserCodeError) as raised:
        function("abc")
    message = str(raised.value)
    assert message.startswith("`extract.function` = 'tasks:calls_helper' raised NameError:")
    assert "tasks.py, line 15, in calls_helper: return shout(text)" in message
    assert "tasks.py, line 3, in shout: return text.upper() + undefined_name" in message
    assert "usercode.py" not in message and "engine" not in message


def test_a_type_error_inside_the_function_is_not_a_signature_problem(folder):
    function = load_callable(folder, "tasks:type_error_inside", "extract.function", "function(text)")
    with pytest.raises(UserCodeError, match="raised TypeError") as raised:
        function("abc")
    assert "could not be called" not in str(raised.value)
    with pytest.raises(UserCodeError, match=r"could not be called as function\(text\)"):
        function("abc", "extra")


def test_library_frames_are_left_out(folder):
    function = load_callable(folder, "tasks:uses_json", "extract.function", "function(text)")
    with pytest.raises(UserCodeError) as raised:
        function("{bad")
    message = str(raised.value)
    assert "JSONDecodeError" in message and "tasks.py, line 24, in uses_json" in message
    assert "json/" not in message and "decoder.py" not in message


def test_a_callable_extractor_that_raises_is_one_clear_error(folder):
    extractor = Extractor(ExtractConfig(kind="callable", function="tasks:calls_helper"), folder)
    with pytest.raises(UserCodeError, match="`extract.function` = 'tasks:calls_helper' raised NameError"):
        extractor.find("some teacher output")


def test_metric_failures_are_metric_errors(folder):
    with pytest.raises(MetricError, match="'tasks:boom' raised RuntimeError: metric broke") as raised:
        score(make_project(folder, '["tasks:boom"]'), ["a"], ["a"], ["a"])
    assert "tasks.py, line 32, in boom" in str(raised.value)
    with pytest.raises(MetricError, match="no file"):
        score(make_project(folder, '["nothere:f"]'), ["a"], ["a"], ["a"])
    with pytest.raises(MetricError, match="'accuracy', which needs a label on every eval input, but 1 of 2"):
        score(make_project(folder, '["accuracy"]'), ["a", "b"], ["a", "b"], ["a", None])
    with pytest.raises(MetricError, match="`eval.reference` = 'label'"):
        references_for(make_project(folder), [{"input": "x"}], [])
    assert issubclass(MetricError, EngineError)


def test_preflight_reports_every_problem_together(folder):
    project = make_project(folder, '["accuracy", "tasks:boom", "nothere:f"]', function="tasks:unlabelled")
    held_out = [{"input": "a"}, {"input": "b"}]
    with pytest.raises(ConfigError) as raised:
        preflight(project, {"main": ([{"input": "c"}], held_out)})
    problems = "\n".join(raised.value.problems)
    assert "`eval.reference` = 'label', but 2 of 2 eval inputs have no label" in problems
    assert "'accuracy', which compares answers with labels, but 2 of 2" in problems
    assert "`eval.metrics` = 'nothere:f': no file" in problems
    assert len(raised.value.problems) == 3  # tasks:boom is not called: there is no label to score


def test_preflight_calls_a_metric_on_a_label(folder):
    project = make_project(folder, '["tasks:boom"]')
    problems = preflight_problems(project, {"main": ([{"input": "c", "label": "c"}], [{"input": "a", "label": "a"}])})
    assert problems and "'tasks:boom' raised RuntimeError" in problems[0]


def test_preflight_without_inputs_checks_signatures_only(folder):
    project = make_project(folder, '["tasks:match"]')
    preflight(project)
    wrong = make_project(folder, '["tasks:make"]')  # make(rng, n) does take two arguments: fine by signature
    preflight(wrong)
    one = make_project(folder, '["exact_match"]', function="tasks:calls_helper")
    (problem,) = preflight_problems(one)
    assert "cannot be called as function(rng, n, **inputs.options)" in problem


def test_devices_this_machine_lacks_are_clear_errors(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(EngineError, match="has 2 CUDA device\\(s\\)"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_trust_remote_code_gets_a_warning(folder):
    from dataclasses import replace

    project = make_project(folder)
    assert remote_code_warning(project.model) is None
    warning = remote_code_warning(replace(project.model, trust_remote_code=True))
    assert "`model.trust_remote_code` = true" in warning and "will run" in warning


def test_pickle_weights_are_refused(tmp_path):
    from engine.project.schema import ModelConfig

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(EngineError, match="holds only pickle weights .* safetensors only"):
        load_model(ModelConfig(name=str(tmp_path), device="cpu"))


def test_a_default_name_from_an_odd_folder_is_made_safe(tmp_path):
    folder = tmp_path / "my project (v2)"
    folder.mkdir()
    project = project_from_toml_text(folder, PROJECT.replace("{metrics}", '["exact_match"]').replace("{reference}", "label"))
    assert project.name == "my-project-v2"

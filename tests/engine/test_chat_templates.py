"""Chat models (issue 10, item 2): system and user turns, generation in the assistant turn, exact alignment.

Tokenizers carry real chat templates (ChatML as in Qwen 2.5, Llama 3's) and their
special tokens, built locally on the character tokenizer (tests/engine/chat_fixtures.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.errors import ConfigError, EngineError
from engine.project.loader import load_project
from engine.project.schema import ModelConfig
from engine.teacher.extractors import Extractor
from engine.models import load_model, load_tokenizer
from engine.teacher.teacher_pass import TeacherRecord, cache_key, student_prompt, teacher_prompt
from engine.project.templates import adds_bos, apply_chat_template, end_of_turn_id

from chat_fixtures import STYLES, build_chat_model_dir, build_chat_tokenizer
from engine_fixtures import write_project

END_OF_TURN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}
ASSISTANT_OPENING = {"chatml": "<|im_start|>assistant\n", "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n"}
SYSTEM = "You reverse words. {{ rules }}"
CHAT_TABLES = '''
[model]
chat_template = true
'''


@pytest.fixture(scope="module", params=STYLES)
def style(request):
    return request.param


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory, style):
    return build_chat_model_dir(tmp_path_factory.mktemp(f"chat-{style}"), style,
                                architecture="qwen2" if style == "chatml" else "llama")


def chat_project(folder: Path, model: Path, *, teacher_system: str = SYSTEM, student_system: str = "",
                 **overrides) -> Path:
    """The tiny reverse project as a chat project: a system message on the teacher, the input as the user turn."""
    project = write_project(folder, model, extract='kind = "identity"\nstrip = false',
                            teacher="Reverse the letters of: {{ input }}", **overrides)
    text = (project / "project.toml").read_text()
    text = text.replace('device = "cpu"\n', 'device = "cpu"\nchat_template = true\n')
    text = text.replace("[student]\ntemplate = ", f"[student]\nsystem = {json.dumps(student_system)}\ntemplate = ")
    text = text.replace("[teacher]\n", f"[teacher]\nsystem = {json.dumps(teacher_system)}\n"
                                       "vars = { rules = \"Answer with the letters only.\" }\n")
    text = text.replace('stop = ["\\n"]', "stop = []")  # a chat answer ends with the end-of-turn token
    (project / "project.toml").write_text(text)
    return project


# --- the template's own token ids --------------------------------------------------

@pytest.mark.parametrize("system", ["", "Be brief."])
def test_a_rendered_conversation_tokenizes_to_the_templates_own_ids(style, system):
    tokenizer = build_chat_tokenizer(style)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "abc"}]
    reference = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    text = apply_chat_template(tokenizer, "abc", system)
    assert tokenizer(text).input_ids == list(reference)
    assert text.endswith(ASSISTANT_OPENING[style]), "generation starts in the assistant turn"
    if style == "llama3":
        assert adds_bos(tokenizer) and tokenizer(text).input_ids.count(tokenizer.bos_token_id) == 1
    if system:
        assert system in text


def test_the_end_of_turn_token_comes_from_the_template(style):
    tokenizer = build_chat_tokenizer(style)
    end = end_of_turn_id(tokenizer)
    assert tokenizer.convert_ids_to_tokens(end) == END_OF_TURN[style]
    assert end != tokenizer.eos_token_id  # the harder case: the tokenizer's EOS is not the end of a turn


def test_generation_stops_at_the_end_of_turn(chat_model_dir, style):
    model, tokenizer = load_model(ModelConfig(name=str(chat_model_dir), device="cpu", chat_template=True))
    eos = model.generation_config.eos_token_id
    assert end_of_turn_id(tokenizer) in eos and tokenizer.eos_token_id in eos
    plain, _ = load_model(ModelConfig(name=str(chat_model_dir), device="cpu"))
    assert end_of_turn_id(tokenizer) not in (plain.generation_config.eos_token_id
                                             if isinstance(plain.generation_config.eos_token_id, list)
                                             else [plain.generation_config.eos_token_id])


# --- system and user turns ------------------------------------------------------------

def test_teacher_and_student_prompts_are_conversations(tmp_path, chat_model_dir, style):
    project = load_project(chat_project(tmp_path / "p", chat_model_dir, student_system="Short."))
    tokenizer = load_tokenizer(project.model, project.dir)
    example = {"input": "abcd"}
    teacher, student = teacher_prompt(project, tokenizer, example), student_prompt(project, tokenizer, example)
    assert "You reverse words. Answer with the letters only." in teacher  # system is Jinja, with `vars`
    assert "Reverse the letters of: abcd" in teacher
    assert "You reverse words" not in student and "Short." in student
    assert student.endswith(ASSISTANT_OPENING[style]) and teacher.endswith(ASSISTANT_OPENING[style])


def test_a_system_message_needs_the_chat_template(tmp_path, char_model_dir):
    folder = write_project(tmp_path / "p", char_model_dir)
    text = (folder / "project.toml").read_text()
    (folder / "project.toml").write_text(text.replace("[teacher]\n", '[teacher]\nsystem = "Be nice."\n'))
    with pytest.raises(ConfigError, match=r"`teacher.system` is set, but `model.chat_template` is false"):
        load_project(folder)


def test_a_model_without_a_chat_template_is_refused_when_loaded(tmp_path, char_model_dir):
    with pytest.raises(EngineError, match=r"has no chat template \(a base model\?\); set `model.chat_template = false`"):
        load_tokenizer(ModelConfig(name=str(char_model_dir), device="cpu", chat_template=True))


def test_the_teacher_system_message_is_part_of_the_cache_key(tmp_path, chat_model_dir):
    project = load_project(chat_project(tmp_path / "p", chat_model_dir))
    inputs = [{"input": "ab"}]
    other = replace(project, teacher=replace(project.teacher, system="Something else."))
    assert cache_key(project, inputs) != cache_key(other, inputs)


def test_a_prompt_over_the_context_window_after_the_template_is_an_error(tmp_path, style):
    from engine.teacher.generation import generate_all

    model_dir = build_chat_model_dir(tmp_path / "small", style, max_positions=80)
    project = load_project(chat_project(tmp_path / "p", model_dir))
    model, tokenizer = load_model(project.model, project.dir)
    example = {"input": "abcdefgh"}
    assert len(tokenizer(f"Reverse the letters of: {example['input']}").input_ids) + 6 < 80  # fits without it
    with pytest.raises(EngineError, match=r"the teacher prompt of input #0 is \d+ tokens; .* context window of 80"):
        generate_all(model, tokenizer, [teacher_prompt(project, tokenizer, example)], batch_size=1, max_new_tokens=6)


# --- alignment: the teacher's assistant-turn ids, then the end of turn ---------------------

def record_for(tokenizer, project, example: dict, output_ids: list[int]) -> TeacherRecord:
    """A teacher record with a distinct label at every output position (label id = the token + 1)."""
    count = len(output_ids)
    return TeacherRecord(example, teacher_prompt(project, tokenizer, example), output_ids,
                         tokenizer.decode(output_ids, skip_special_tokens=True),
                         torch.arange(count + 1), torch.tensor([token + 1 for token in output_ids]), torch.ones(count))


def test_the_student_learns_the_teachers_ids_and_the_end_of_turn(tmp_path, chat_model_dir, style):
    from engine.training.data import build_examples, collate

    project = load_project(chat_project(tmp_path / "p", chat_model_dir))
    tokenizer = load_tokenizer(project.model, project.dir)
    end = end_of_turn_id(tokenizer)
    answer = tokenizer("dcba", add_special_tokens=False).input_ids
    finished = record_for(tokenizer, project, {"input": "abcd"}, answer + [end])  # the teacher closed its turn
    cut_off = record_for(tokenizer, project, {"input": "wxyz"}, answer)  # ran out of tokens
    examples, missed = build_examples(project, tokenizer, [finished, cut_off],
                                      Extractor(project.extract, project.dir), max_seq_len=512)
    assert missed == []
    for example, record in zip(examples, [finished, cut_off]):
        prompt_ids = tokenizer(student_prompt(project, tokenizer, record.input)).input_ids
        assert example.input_ids[: example.answer_start] == prompt_ids
        assert example.input_ids[example.answer_start:] == answer + [end]  # the teacher's own ids, never re-encoded
    # The teacher's labels where it had them; a hard end-of-turn label where it went on or was cut off.
    assert [ids.tolist() for ids in examples[0].label_ids] == [[token + 1] for token in answer + [end]]
    assert [ids.tolist() for ids in examples[1].label_ids] == [[token + 1] for token in answer] + [[end]]
    assert examples[1].label_probs[-1].tolist() == [1.0]

    input_ids, _, targets = collate(examples, tokenizer.pad_token_id)
    for (row, position), ids in zip(targets.positions.tolist(), targets.label_ids.tolist()):
        predicted = input_ids[row, position + 1].item()  # the logits at t predict token t + 1
        assert ids[0] in (predicted + 1, predicted)


# --- end to end --------------------------------------------------------------------------

def test_a_chat_project_runs_end_to_end(tmp_path, chat_model_dir, style):
    project = chat_project(tmp_path / "run", chat_model_dir, max_steps=2, max_new_tokens=4)
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    outputs = [json.loads(line) for line in (run_dir / "teacher" / "outputs.jsonl").read_text().splitlines()]
    assert all(row["prompt"].endswith(ASSISTANT_OPENING[style]) and "You reverse words." in row["prompt"]
               for row in outputs)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all("student_after" in row for row in samples)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["prompt_tokens"]["teacher"] > metrics["prompt_tokens"]["student"]

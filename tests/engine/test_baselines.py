"""The supervised baselines' targets (engine/evaluation/baselines.py): a chat model's end with the end-of-turn token."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.evaluation.baselines import direct_examples, scratchpad_examples
from engine.project.loader import load_project
from engine.teacher.extractors import Extractor
from engine.teacher.teacher_pass import TeacherRecord, student_prompt, teacher_prompt
from engine.project.templates import end_of_turn_id

from chat_fixtures import STYLES, build_chat_tokenizer
from engine_fixtures import write_project


def record(project, tokenizer, output_ids: list[int]) -> TeacherRecord:
    example = {"input": "abcd", "label": "dcba"}
    count = len(output_ids)
    return TeacherRecord(example, teacher_prompt(project, tokenizer, example), output_ids,
                         tokenizer.decode(output_ids, skip_special_tokens=True),
                         torch.arange(count + 1), torch.tensor(output_ids), torch.ones(count))


def targets(examples) -> list[list[int]]:
    return [example.input_ids[example.answer_start:] for example in examples]


@pytest.mark.parametrize("style", STYLES)
def test_a_chat_baseline_learns_to_end_its_turn(tmp_path, char_model_dir, style):
    tokenizer = build_chat_tokenizer(style)
    plain = load_project(write_project(tmp_path / "p", char_model_dir))
    chat = replace(plain, model=replace(plain.model, chat_template=True))
    end = end_of_turn_id(tokenizer)
    answer = tokenizer("dcba", add_special_tokens=False).input_ids
    cut_off, closed = record(chat, tokenizer, answer), record(chat, tokenizer, answer + [end])
    extractor = Extractor(chat.extract, chat.dir)

    assert targets(direct_examples(chat, tokenizer, [cut_off])) == [answer + [end]]
    # The teacher's own scratch-pad ids, closed once: a turn the teacher ended is not closed twice.
    assert targets(scratchpad_examples(chat, tokenizer, [cut_off, closed], extractor)) == [answer + [end]] * 2
    direct = direct_examples(chat, tokenizer, [cut_off])[0]
    assert direct.input_ids[: direct.answer_start] == tokenizer(student_prompt(chat, tokenizer, cut_off.input)).input_ids

    # A model without the chat template keeps the line-and-EOS target.
    newline = tokenizer("dcba\n", add_special_tokens=False).input_ids
    assert targets(direct_examples(plain, tokenizer, [cut_off])) == [newline + [tokenizer.eos_token_id]]
    assert targets(scratchpad_examples(plain, tokenizer, [cut_off], extractor)) == [answer]


def test_the_examples_baseline_trains_on_the_teachers_worked_examples_under_the_student_template(tmp_path, char_model_dir):
    from engine.evaluation.baselines import worked_examples
    from engine.project.loader import project_from_toml_text
    from engine.models import load_tokenizer

    folder = write_project(tmp_path / "p", char_model_dir)
    toml = (folder / "project.toml").read_text()
    shown = 'vars = { examples = [{ input = "ab", label = "ba" }, { input = "xyz", output = "zyx" }] }\n'
    project = project_from_toml_text(folder, toml.replace("[teacher]\n", "[teacher]\n" + shown)
                                     + '\n[baselines]\nmethods = ["examples"]\n')
    tokenizer = load_tokenizer(project.model, project.dir)
    examples = worked_examples(project, tokenizer)
    assert [tokenizer.decode(example.input_ids[:example.answer_start]) for example in examples] == [
        tokenizer.decode(tokenizer(student_prompt(project, tokenizer, {"input": word})).input_ids) for word in ("ab", "xyz")]
    assert targets(examples) == [tokenizer("ba\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id],
                                 tokenizer("zyx\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]]
    # Without worked examples there is nothing to train on: said when the project loads.
    from engine.errors import EngineError
    with pytest.raises(EngineError, match="teacher.vars.examples"):
        project_from_toml_text(folder, toml + '\n[baselines]\nmethods = ["examples"]\n')

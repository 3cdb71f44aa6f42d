"""Answer-token alignment (design.md, "Token alignment"): the student trains on the teacher's own ids.

The teacher's prefix (long prompt + scratch-pad) is longer than the student's, so
a label read at teacher output position `start + j` must land on student position
`len(student prompt) - 1 + j`.
"""

from __future__ import annotations

import pytest
import torch

from engine.project.loader import project_from_toml_text
from engine.training.data import build_examples, collate
from engine.teacher.extractors import ExtractedAnswer, Extractor, answer_token_span, token_char_bounds, token_char_offsets
from engine.teacher.teacher_pass import TeacherRecord

PROJECT = '''
[model]
name = "{model}"

[inputs]
function = "tasks:make"

[teacher]
template = """Add the numbers. Work digit by digit, then give the answer.
Example: 11 + 22
Step 1: 1 + 2 = 3
Step 2: 1 + 2 = 3
Answer: 33

{{{{ input }}}}
"""

[student]
template = "{{{{ input }}}} = "

[extract]
kind = "after_marker"
marker = "Answer:"

[distill]
max_steps = 1
'''

SCRATCH_PAD = "Step 1: 3 + 0 = 3\nStep 2: 2 + 0 = 2\nStep 3: 1 + 0 = 1\nAnswer: "


def make_record(tokenizer, example: dict, answer_ids: list[int], seed: int) -> TeacherRecord:
    """A teacher output: scratch-pad lines, then `Answer: ` + answer_ids + EOS, with distinct labels per position."""
    output_ids = tokenizer(SCRATCH_PAD, add_special_tokens=False).input_ids + answer_ids + [tokenizer.eos_token_id]
    generator = torch.Generator().manual_seed(seed)
    label_ids, label_probs, offsets = [], [], [0]
    for position, token in enumerate(output_ids):
        # Two or three label ids per position, the first the generated token; all distinct per position.
        others = torch.randperm(len(tokenizer), generator=generator)[:2 + position % 2].tolist()
        ids = [token] + [other for other in others if other != token][: 1 + position % 2]
        probs = torch.rand(len(ids), generator=generator) + 0.1
        label_ids += ids
        label_probs += (probs / probs.sum()).tolist()
        offsets.append(len(label_ids))
    text = tokenizer.decode(output_ids, skip_special_tokens=True)
    return TeacherRecord(example, "(teacher prompt)", output_ids, text, torch.tensor(offsets),
                         torch.tensor(label_ids), torch.tensor(label_probs))


def encode_each_character(tokenizer, text: str) -> list[int]:
    """One token per character: a valid but non-canonical tokenization a sampling teacher may produce."""
    return [tokenizer(character, add_special_tokens=False).input_ids[0] for character in text]


def check_alignment(project, tokenizer, records: list[TeacherRecord], answer_texts: list[str], answer_ids: list[list[int]]):
    examples, missed = build_examples(project, tokenizer, records, Extractor(project.extract, project.dir), max_seq_len=512)
    assert missed == []
    input_ids, attention_mask, targets = collate(examples, tokenizer.pad_token_id)
    scratch_pad_length = len(tokenizer(SCRATCH_PAD, add_special_tokens=False).input_ids)
    k = 0
    for row, (record, example) in enumerate(zip(records, examples)):
        prompt_ids = tokenizer(f"{record.input['input']} = ").input_ids
        # The answer span: the teacher's own ids (after the scratch-pad), plus the "\n" terminator and EOS.
        start = scratch_pad_length
        expected_answer = answer_ids[row] + [tokenizer.eos_token_id]
        assert record.output_ids[start:] == expected_answer
        assert tokenizer.decode(expected_answer, skip_special_tokens=True) == answer_texts[row] + "\n"
        assert example.input_ids == prompt_ids + expected_answer
        assert example.answer_start == len(prompt_ids)
        assert len(record.output_ids) > len(expected_answer) + 10  # the teacher prefix is much longer
        length = len(example.input_ids)
        assert input_ids[row, :length].tolist() == example.input_ids
        assert attention_mask[row].tolist() == [1] * length + [0] * (input_ids.shape[1] - length)
        for j in range(len(expected_answer)):
            position = targets.positions[k].tolist()
            assert position == [row, len(prompt_ids) - 1 + j]
            # The logits at that position predict the answer token j ...
            assert input_ids[row, position[1] + 1].item() == expected_answer[j]
            # ... and carry the teacher's labels of output position start + j.
            begin, end = record.label_offsets[start + j].item(), record.label_offsets[start + j + 1].item()
            width = end - begin
            assert targets.label_ids[k, :width].tolist() == record.label_ids[begin:end].tolist()
            torch.testing.assert_close(targets.label_probs[k, :width], record.label_probs[begin:end])
            assert targets.label_probs[k, width:].abs().sum() == 0  # padding carries no mass
            assert targets.label_ids[k, 0].item() == expected_answer[j]  # the generated token leads
            k += 1
    assert k == len(targets.positions)


@pytest.fixture
def char_project(tmp_path, char_model_dir):
    return project_from_toml_text(tmp_path, PROJECT.format(model=char_model_dir))


@pytest.fixture
def bpe_project(tmp_path, bpe_model_dir):
    return project_from_toml_text(tmp_path, PROJECT.format(model=bpe_model_dir))


def test_alignment_char_tokenizer(char_project):
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(char_project.model, char_project.dir)
    answers = ["123", "99"]
    answer_ids = [tokenizer(text + "\n").input_ids for text in answers]
    records = [make_record(tokenizer, {"input": "120 + 3"}, answer_ids[0], seed=0),
               make_record(tokenizer, {"input": "90 + 9999"}, answer_ids[1], seed=1)]
    check_alignment(char_project, tokenizer, records, answers, answer_ids)


def test_alignment_bpe_keeps_the_teachers_own_ids(bpe_project):
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(bpe_project.model, bpe_project.dir)
    answers = ["123", "Reverse the letters"]
    # "123" as the tokenizer would write it; the other one character per token, which a
    # sampling teacher may well produce and which re-tokenizing the text would not give back.
    answer_ids = [tokenizer("123\n").input_ids, encode_each_character(tokenizer, answers[1] + "\n")]
    assert tokenizer.decode(answer_ids[1]) == answers[1] + "\n"
    assert tokenizer(answers[1] + "\n").input_ids != answer_ids[1]
    assert len(tokenizer(answers[1] + "\n").input_ids) < len(answer_ids[1])
    records = [make_record(tokenizer, {"input": "120 + 3"}, answer_ids[0], seed=0),
               make_record(tokenizer, {"input": "Reverse srettel eht"}, answer_ids[1], seed=1)]
    check_alignment(bpe_project, tokenizer, records, answers, answer_ids)


def test_outputs_without_an_answer_are_reported_not_trained_on(char_project):
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(char_project.model, char_project.dir)
    good = make_record(tokenizer, {"input": "1 + 2"}, tokenizer("3\n").input_ids, seed=0)
    bad_ids = tokenizer("no marker here\n").input_ids
    bad = TeacherRecord({"input": "2 + 2"}, "p", bad_ids, "no marker here\n", torch.arange(len(bad_ids) + 1),
                        torch.tensor(bad_ids), torch.ones(len(bad_ids)))
    examples, missed = build_examples(char_project, tokenizer, [bad, good],
                                      Extractor(char_project.extract, char_project.dir), max_seq_len=512)
    assert missed == [0]
    assert len(examples) == 1


# --- character bounds in linear time (issue 9) ------------------------------------

# Multi-byte characters (2, 3 and 4 bytes) that byte-level BPE splits over several tokens,
# and whitespace that merges into neighbouring tokens.
TEXTS = ["Answer: é\n", "Output: 日本語 and   spaces\t\ttabs\n\n", "x 🙂🙂 y", "café\nAnswer: naïve 日本",
         "  leading and trailing  ", "Step: carry the one\nAnswer: 42\n", "é", "🙂"]


def prefix_decoded_offsets(tokenizer, ids: list[int]) -> list[int]:
    """The definition: the length of every decoded prefix (quadratic)."""
    return [len(tokenizer.decode(ids[:i], skip_special_tokens=True)) for i in range(len(ids) + 1)]


def one_token_per_byte(tokenizer, text: str) -> list[int]:
    """A byte-level BPE sampling one byte at a time: every multi-byte character split."""
    return [_byte_token(tokenizer, byte) for byte in text.encode()]


def _byte_token(tokenizer, byte: int) -> int:
    from engine.teacher.extractors import _byte_level_alphabet

    character = next(c for c, b in _byte_level_alphabet().items() if b == byte)
    return tokenizer.convert_tokens_to_ids(character)


def metaspace_tokenizer():
    """A SentencePiece-style (Llama 2) tokenizer: `▁` for spaces, first space stripped on decode."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from engine_fixtures import bpe_corpus

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "</s>"], show_progress=False,
                                  initial_alphabet=list("éèà日本語🙂\t"))
    core.train_from_iterator(bpe_corpus() + TEXTS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", unk_token="<unk>", pad_token="</s>",
                                   clean_up_tokenization_spaces=False)


def wordpiece_tokenizer():
    """A BERT-style tokenizer: `##` continuations, and clean-up that removes spaces before punctuation."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from engine_fixtures import bpe_corpus

    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "[SEP]"], show_progress=False)
    core.train_from_iterator(bpe_corpus() + TEXTS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="[SEP]", pad_token="[SEP]",
                                   clean_up_tokenization_spaces=True)


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_equal_prefix_decoding(text, char_tokenizer, bpe_tokenizer):
    for tokenizer in (char_tokenizer, bpe_tokenizer, metaspace_tokenizer(), wordpiece_tokenizer()):
        ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        assert token_char_offsets(tokenizer, ids) == prefix_decoded_offsets(tokenizer, ids), (tokenizer, text)


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_with_every_multibyte_character_split(text, bpe_tokenizer):
    ids = one_token_per_byte(bpe_tokenizer, text)
    assert bpe_tokenizer.decode(ids) == text
    assert token_char_offsets(bpe_tokenizer, ids) == prefix_decoded_offsets(bpe_tokenizer, ids)


def test_a_split_last_character_stays_whole_in_the_answer(bpe_tokenizer):
    text = "Answer: é日🙂"
    ids = one_token_per_byte(bpe_tokenizer, text)
    start = text.index("é")
    span = answer_token_span(bpe_tokenizer, ids, text, ExtractedAnswer(text[start:], start, len(text)), stops=[])
    # Decoding every prefix would end the span inside 🙂 (its first byte shows as U+FFFD).
    assert bpe_tokenizer.decode(ids[span.start:span.end]) == "é日🙂"
    assert bpe_tokenizer.decode(ids[:span.start]) == "Answer: "


def test_answer_starting_inside_a_token_and_on_a_split_character(bpe_tokenizer):
    text = "Answer: 日本 done\n"
    ids = one_token_per_byte(bpe_tokenizer, text)
    start = text.index("本")
    span = answer_token_span(bpe_tokenizer, ids, text, ExtractedAnswer("本 done", start, start + 6), stops=["\n"])
    assert bpe_tokenizer.decode(ids[span.start:span.end]) == "本 done\n"


def test_every_method_agrees_with_prefix_decoding(bpe_tokenizer):
    """The window method (for tokenizers without byte pieces) and the byte method, on the same ids."""
    from engine.teacher.extractors import (_bounds_by_incremental_utf8, _bounds_by_window_decoding, _bounds_from_bytes,
                                   _byte_pieces)

    for text in TEXTS:
        split = one_token_per_byte(bpe_tokenizer, text)
        for ids in (bpe_tokenizer(text).input_ids, split, split[:-1]):  # the last: ends inside a character
            text = bpe_tokenizer.decode(ids)
            expected = prefix_decoded_offsets(bpe_tokenizer, ids)
            by_bytes, text_by_bytes = _bounds_from_bytes(_byte_pieces(bpe_tokenizer, ids))
            by_decoder, text_by_decoder = _bounds_by_incremental_utf8(_byte_pieces(bpe_tokenizer, ids))
            by_window, text_by_window = _bounds_by_window_decoding(bpe_tokenizer, ids)
            assert text_by_bytes == text_by_decoder == text_by_window == text
            for bounds in (by_bytes, by_decoder, by_window):
                assert [w + c for w, c in zip(bounds.whole, bounds.cut)] == expected


class MergingDecoder:
    """A tokenizer whose decode rewrites text across many tokens ("abc" -> "X"), which no window sees."""

    def __init__(self, tokenizer):
        self.inner = tokenizer

    def decode(self, ids, skip_special_tokens=False):
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens).replace("abc", "X")


def test_a_decode_no_linear_method_reproduces_falls_back_to_prefix_decoding(char_tokenizer):
    tokenizer = MergingDecoder(char_tokenizer)
    ids = char_tokenizer("Answer: abc abd").input_ids
    assert token_char_offsets(tokenizer, ids) == prefix_decoded_offsets(tokenizer, ids)
    assert token_char_offsets(tokenizer, ids)[8:12] == [8, 9, 10, 9]  # "a", "ab", then "X"


def test_alignment_is_linear(bpe_tokenizer):
    """2,048 tokens take well under the quadratic method's time (a loose bound: the bench measures)."""
    import time

    ids = (bpe_tokenizer("Step: carry the one\nAnswer: 42 é日🙂\n").input_ids * 200)[:2048]
    token_char_bounds(bpe_tokenizer, ids)  # fills the piece table
    started = time.perf_counter()
    token_char_bounds(bpe_tokenizer, ids)
    assert time.perf_counter() - started < 0.1

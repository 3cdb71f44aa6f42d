"""Answer extractors: teacher output -> the answer span (paper section 2.1).

An extractor finds the answer in the teacher's output *text* (character
offsets), and `answer_token_span` maps that to a span of the teacher's own
output token ids. The student is trained on exactly those ids, never on a
re-tokenization of the answer text (design.md, "Token alignment").

The training span also covers the answer's terminator (the stop string or
end-of-sequence right after it) so the student learns where its answer ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.config import ExtractConfig
from engine.errors import EngineError
from engine.usercode import load_callable


@dataclass(frozen=True)
class ExtractedAnswer:
    text: str
    start: int  # character offsets into the output text
    end: int


class Extractor:
    """One configured extractor: `find(text)` returns the answer or None."""

    def __init__(self, config: ExtractConfig, project_dir: Path):
        self.config = config
        self._pattern = re.compile(config.pattern) if config.kind == "regex" else None
        self._function = (load_callable(project_dir, config.function, "extract.function")
                          if config.kind == "callable" else None)

    def find(self, text: str) -> ExtractedAnswer | None:
        span = self._span(text)
        if span is None:
            return None
        start, end = span
        if self.config.strip:
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
        if start >= end:
            return None
        return ExtractedAnswer(text[start:end], start, end)

    def _span(self, text: str) -> tuple[int, int] | None:
        kind = self.config.kind
        if kind == "identity":
            return 0, len(text)
        if kind == "regex":
            matches = list(self._pattern.finditer(text))
            if not matches:
                return None
            # The teacher states its final answer last, after any reasoning.
            match = matches[-1]
            return match.span(self.config.group)
        if kind == "after_marker":
            position = text.rfind(self.config.marker)
            if position < 0:
                return None
            start = position + len(self.config.marker)
            end = text.find(self.config.until, start) if self.config.until else -1
            return start, (end if end >= 0 else len(text))
        result = self._function(text)
        if result is None:
            return None
        if isinstance(result, str):
            position = text.rfind(result)
            return None if position < 0 or not result else (position, position + len(result))
        try:
            start, end = (int(value) for value in result)
        except (TypeError, ValueError):
            raise EngineError(f"`extract.function` returned {result!r}: expected (start, end), a string, or None") from None
        if not 0 <= start <= end <= len(text):
            raise EngineError(f"`extract.function` returned ({start}, {end}) for a text of {len(text)} characters")
        return start, end


def direct_answer(text: str, stops: list[str]) -> str:
    """The answer in a student-template output: all of it, up to the first stop string.

    The student is trained to produce only the answer, so no extractor applies.
    """
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()


def token_char_offsets(tokenizer, token_ids: list[int]) -> list[int]:
    """offsets[i] = characters decoded from token_ids[:i]; len(offsets) = len(token_ids) + 1.

    Decoding prefixes (not single tokens) keeps multi-byte characters and
    whitespace-merging decoders right for every tokenizer.
    """
    offsets = [0]
    for i in range(1, len(token_ids) + 1):
        offsets.append(len(tokenizer.decode(token_ids[:i], skip_special_tokens=True)))
    return offsets


@dataclass(frozen=True)
class AnswerSpan:
    start: int  # token indices into the teacher's output ids
    end: int
    answer: ExtractedAnswer


def answer_token_span(tokenizer, output_ids: list[int], text: str, answer: ExtractedAnswer,
                      stops: list[str]) -> AnswerSpan:
    """Map an answer's character span to the teacher output tokens covering it (+ terminator)."""
    offsets = token_char_offsets(tokenizer, output_ids)
    end_char = answer.end
    rest = text[end_char:]
    for terminator in [*stops, "\n"]:
        stripped = rest.lstrip(" \t")
        if terminator and stripped.startswith(terminator):
            end_char += len(rest) - len(stripped) + len(terminator)
            break
    start_token = next(i for i in range(len(output_ids)) if offsets[i + 1] > answer.start)
    end_token = next((i for i in range(len(output_ids) + 1) if offsets[i] >= end_char), len(output_ids))
    # An end-of-sequence token right after the answer is part of what the student must learn.
    if end_token < len(output_ids) and offsets[end_token] == offsets[-1] and end_char >= len(text):
        end_token = len(output_ids)
    return AnswerSpan(start_token, max(end_token, start_token + 1), answer)

"""Answer extractors: teacher output -> the answer span (paper section 2.1).

An extractor finds the answer in the teacher's output *text* (character
offsets), and `answer_token_span` maps that to a span of the teacher's own
output token ids. The student is trained on exactly those ids, never on a
re-tokenization of the answer text (design.md, "Token alignment").

The training span also covers the answer's terminator (the stop string or
end-of-sequence right after it) so the student learns where its answer ends.
"""

from __future__ import annotations

import array
import codecs
import functools
import itertools
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.project.schema import ExtractConfig
from engine.errors import EngineError
from engine.project.usercode import load_callable


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
        self._function = (load_callable(project_dir, config.function, "extract.function", "function(text)")
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
            raise EngineError(f"{self._function.name} returned {result!r} ({type(result).__name__}) for the teacher "
                              f"output {text[:80]!r}: expected (start, end), the answer string, or None") from None
        if not 0 <= start <= end <= len(text):
            raise EngineError(f"{self._function.name} returned ({start}, {end}) for the teacher output {text[:80]!r} "
                              f"of {len(text)} characters: expected 0 <= start <= end <= {len(text)}")
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
    """offsets[i] = len(tokenizer.decode(token_ids[:i], skip_special_tokens=True)); len = len(token_ids) + 1.

    A character cut by the boundary counts as the one replacement character the decode shows.
    """
    bounds = token_char_bounds(tokenizer, token_ids)
    return [whole + cut for whole, cut in zip(bounds.whole, bounds.cut)]


@dataclass(frozen=True)
class CharBounds:
    """Where each token boundary falls in the decoded text (special tokens skipped); len = tokens + 1.

    whole[i]: characters completely decoded from token_ids[:i].
    cut[i]: 1 when token_ids[:i] ends inside a multi-byte character (its first bytes are there), else 0.
    """

    whole: list[int]
    cut: list[int]


def token_char_bounds(tokenizer, token_ids: list[int]) -> CharBounds:
    """Character bounds of every token boundary, in time linear in the number of tokens (issue 9).

    Tried in order, each checked against one decode of the whole output: the tokens' own
    bytes (byte-level BPE, character vocabularies), then decoding in a small sliding window
    (any other tokenizer), then, where both disagree with the tokenizer's decode, decoding
    every prefix (quadratic, but exact by definition).
    """
    full_text = tokenizer.decode(token_ids, skip_special_tokens=True)
    pieces = _byte_pieces(tokenizer, token_ids)
    if pieces is not None:
        bounds, text = _bounds_from_bytes(pieces)
        if text == full_text:
            return bounds
    bounds, text = _bounds_by_window_decoding(tokenizer, token_ids)
    if text == full_text:
        return bounds
    return _bounds_by_prefix_decoding(tokenizer, token_ids)


# Per tokenizer: token id -> the bytes it decodes to (b"" for special tokens), filled as ids are met.
_PIECE_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _byte_pieces(tokenizer, token_ids: list[int]) -> list[bytes] | None:
    """Each token's bytes, for decoders that only concatenate them; None for any other decoder."""
    to_bytes = _piece_decoder(tokenizer)
    if to_bytes is None:
        return None
    try:
        table = _PIECE_TABLES.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no table, same pieces
        table = {}
    missing = [token for token in set(token_ids) if token not in table]
    if missing:
        special = set(tokenizer.all_special_ids)
        for token, piece in zip(missing, tokenizer.convert_ids_to_tokens(missing)):
            table[token] = b"" if token in special or piece is None else to_bytes(piece)
    return [table[token] for token in token_ids]


def _piece_decoder(tokenizer):
    """token string -> bytes for the decoders that only concatenate tokens, else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    kind = type(getattr(backend, "decoder", None)).__name__
    if kind == "ByteLevel":
        byte_of = _byte_level_alphabet()
        # Characters outside the alphabet (added tokens' text) decode as themselves, as in `tokenizers`.
        return lambda piece: b"".join(bytes([byte_of[c]]) if c in byte_of else c.encode() for c in piece)
    if kind == "Fuse":
        return lambda piece: piece.encode()
    return None


@functools.lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character that stands for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    characters, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            characters[chr(byte)] = byte
        else:
            characters[chr(256 + extra)] = byte
            extra += 1
    return characters


def _bounds_from_bytes(pieces: list[bytes]) -> tuple[CharBounds, str]:
    """Character bounds from each token's bytes: counted in one pass when the bytes are valid UTF-8."""
    data = b"".join(pieces)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # invalid bytes or an unfinished last character: the replacement rules apply
        return _bounds_by_incremental_utf8(pieces)
    if not data:
        return CharBounds([0] * (len(pieces) + 1), [0] * (len(pieces) + 1)), text
    # In valid UTF-8 every character has exactly one byte that is not a continuation byte (0b10xxxxxx).
    byte_values = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    starts_character = (byte_values & 0xC0) != 0x80
    characters_before = torch.cat([torch.zeros(1, dtype=torch.long), starts_character.long().cumsum(0)])
    # (array, not torch.tensor(list): building a tensor from Python ints costs far more than the rest)
    boundaries = torch.frombuffer(array.array("q", itertools.accumulate(map(len, pieces), initial=0)), dtype=torch.long)
    # A boundary followed by a continuation byte falls inside a character: its first bytes show as one U+FFFD.
    inside = ~torch.cat([starts_character, torch.ones(1, dtype=torch.bool)])[boundaries]
    return CharBounds((characters_before[boundaries] - inside.long()).tolist(), inside.long().tolist()), text


def _bounds_by_incremental_utf8(pieces: list[bytes]) -> tuple[CharBounds, str]:
    """Feed the pieces to an incremental UTF-8 decoder, which holds back a character's first bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    whole, cut, chunks = [0], [0], []
    for piece in pieces:
        chunk = decoder.decode(piece)
        chunks.append(chunk)
        whole.append(whole[-1] + len(chunk))
        cut.append(1 if decoder.getstate()[0] else 0)
    chunks.append(decoder.decode(b"", final=True))  # an unfinished last character shows as U+FFFD
    return CharBounds(whole, cut), "".join(chunks)


def _bounds_by_window_decoding(tokenizer, token_ids: list[int]) -> tuple[CharBounds, str]:
    """Decode each new token together with the token before it, so spacing rules see their context.

    Both decodes start at the same token, so a decoder that strips the first token's leading
    space strips it from both; a trailing U+FFFD means a character is still incomplete.
    """
    whole, cut, chunks = [0], [0], []
    context_start, read_start = 0, 0
    for i in range(len(token_ids)):
        before = tokenizer.decode(token_ids[context_start:read_start], skip_special_tokens=True)
        after = tokenizer.decode(token_ids[context_start: i + 1], skip_special_tokens=True)
        if after.endswith("\ufffd") or not after.startswith(before):
            whole.append(whole[-1])
            cut.append(1 if after.endswith("\ufffd") else 0)
            continue
        chunks.append(after[len(before):])
        whole.append(whole[-1] + len(chunks[-1]))
        cut.append(0)
        context_start, read_start = read_start, i + 1
    if read_start < len(token_ids):  # the last tokens never completed a character
        chunks.append(tokenizer.decode(token_ids[context_start:], skip_special_tokens=True)[
            len(tokenizer.decode(token_ids[context_start:read_start], skip_special_tokens=True)):])
    return CharBounds(whole, cut), "".join(chunks)


def _bounds_by_prefix_decoding(tokenizer, token_ids: list[int]) -> CharBounds:
    """Decode every prefix: quadratic, kept for tokenizers whose decode no linear method reproduces."""
    whole = [len(tokenizer.decode(token_ids[:i], skip_special_tokens=True)) for i in range(len(token_ids) + 1)]
    return CharBounds(whole, [0] * len(whole))


@dataclass(frozen=True)
class AnswerSpan:
    start: int  # token indices into the teacher's output ids
    end: int
    answer: ExtractedAnswer


def answer_token_span(tokenizer, output_ids: list[int], text: str, answer: ExtractedAnswer,
                      stops: list[str]) -> AnswerSpan:
    """Map an answer's character span to the teacher output tokens covering it (+ terminator)."""
    bounds = token_char_bounds(tokenizer, output_ids)
    end_char = answer.end
    rest = text[end_char:]
    for terminator in [*stops, "\n"]:
        stripped = rest.lstrip(" \t")
        if terminator and stripped.startswith(terminator):
            end_char += len(rest) - len(stripped) + len(terminator)
            break
    # The first token that shows any of the answer (even the first bytes of its first character) ...
    shown = [whole + cut for whole, cut in zip(bounds.whole, bounds.cut)]
    start_token = next(i for i in range(len(output_ids)) if shown[i + 1] > answer.start)
    # ... up to the first boundary after which the answer's last character is whole.
    end_token = next((i for i in range(len(output_ids) + 1) if bounds.whole[i] >= end_char), len(output_ids))
    # An end-of-sequence token right after the answer is part of what the student must learn.
    if end_token < len(output_ids) and bounds.whole[end_token] == bounds.whole[-1] and end_char >= len(text):
        end_token = len(output_ids)
    return AnswerSpan(start_token, max(end_token, start_token + 1), answer)

"""BERT uncased WordPiece tokenization over the model's ``vocab.txt``.

As all-MiniLM-L6-v2's tokenizer is configured (``do_lower_case``, basic tokenization, Chinese
characters split, accents stripped when lower-casing): clean control characters, lower-case,
strip accents (NFD, drop combining marks), split on whitespace and around punctuation, then
greedy longest-match-first WordPiece with ``##`` continuations; a word with no match (or longer
than 100 characters) is ``[UNK]``. The sequence is ``[CLS] tokens [SEP]``.
``tests/test_model.py`` compares it with the Hugging Face ``tokenizers`` library on the
model's ``tokenizer.json`` when that library is installed.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

__all__ = ["WordPiece"]


def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    def __init__(self, vocab_file, max_chars=100):
        lines = Path(vocab_file).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.vocab = {tok: i for i, tok in enumerate(lines)}
        self.max_chars = max_chars
        self.cls, self.sep, self.unk = (self.vocab[t] for t in ("[CLS]", "[SEP]", "[UNK]"))

    def words(self, text):
        """Basic tokenization: the list of lower-cased, accent-free words and punctuation."""
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C")
                                           and ch not in "\t\n\r"):
                continue
            out.append(f" {ch} " if _is_cjk(cp) else (" " if ch.isspace() else ch))
        words = []
        for word in "".join(out).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            cur = ""
            for ch in word:
                if _is_punct(ch):
                    if cur:
                        words.append(cur)
                    words.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                words.append(cur)
        return words

    def wordpiece(self, word):
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text):
        """Token ids ``[CLS] ... [SEP]`` of ``text``."""
        ids = [self.cls]
        for word in self.words(text):
            ids += self.wordpiece(word)
        return ids + [self.sep]

"""Prompt formatting, tokenizers and batch collation (loss only on answer tokens)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .lessons.base import Example

IGNORE_INDEX = -100


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255, plus pad and end-of-answer; 258 ids in all.

    The tiny model uses it: no merges means digits stay separate (good for number rules) and any
    uploaded lesson is representable without training a vocabulary.
    """

    pad_token_id = 256
    eos_token_id = 257
    vocab_size = 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """Adapter giving a Hugging Face tokenizer the same three calls as ByteTokenizer."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_token_id = tok.eos_token_id
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.vocab_size = len(tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


@dataclass(frozen=True)
class PromptFormat:
    """How an example becomes prompt text; the answer follows the prompt directly."""

    template: str = "{instruction}\n{input}\n"
    answer_prefix: str = ""

    def prompt(self, ex: Example) -> str:
        return self.template.format(instruction=ex.instruction, input=ex.input)

    def answer(self, ex: Example) -> str:
        return self.answer_prefix + ex.output


COMPACT = PromptFormat()                                   # tiny byte model: every byte costs time
VERBOSE = PromptFormat("Instruction: {instruction}\nInput: {input}\nAnswer:", " ")   # pretrained LMs


@dataclass
class Batch:
    input_ids: torch.Tensor        # (B, L) right-padded
    attention_mask: torch.Tensor   # (B, L)
    labels: torch.Tensor           # (B, L) IGNORE_INDEX outside answers
    sources: torch.Tensor          # (B,) which pool each row came from (0 = current task)
    task_ids: torch.Tensor         # (B,) task index of each row

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels,
                                                self.sources, self.task_ids)))

    def select(self, mask: torch.Tensor) -> "Batch":
        return Batch(self.input_ids[mask], self.attention_mask[mask], self.labels[mask],
                     self.sources[mask], self.task_ids[mask])

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


class Encoder:
    """Turns examples into token ids once and caches them (the lesson is re-read every epoch)."""

    def __init__(self, tokenizer, fmt: PromptFormat, max_len: int = 256):
        self.tokenizer, self.fmt, self.max_len = tokenizer, fmt, max_len
        self._cache: dict[Example, tuple[list[int], list[int]]] = {}

    def encode(self, ex: Example) -> tuple[list[int], list[int]]:
        hit = self._cache.get(ex)
        if hit is None:
            prompt = self.tokenizer.encode(self.fmt.prompt(ex))
            answer = self.tokenizer.encode(self.fmt.answer(ex)) + [self.tokenizer.eos_token_id]
            # keep the answer whole; cut the prompt from the left if the pair is too long
            prompt = prompt[-max(1, self.max_len - len(answer)):]
            hit = self._cache[ex] = (prompt, answer[: self.max_len - 1])
        return hit

    def collate(self, examples: list[Example], sources=None, task_ids=None) -> Batch:
        # numpy fills rows from Python lists far faster than one small torch tensor per row
        pairs = [self.encode(ex) for ex in examples]
        length = max(len(p) + len(a) for p, a in pairs)
        ids = np.full((len(pairs), length), self.tokenizer.pad_token_id, dtype=np.int64)
        labels = np.full((len(pairs), length), IGNORE_INDEX, dtype=np.int64)
        mask = np.zeros((len(pairs), length), dtype=np.int64)
        for row, (p, a) in enumerate(pairs):
            n = len(p) + len(a)
            ids[row, :n] = p + a
            labels[row, len(p):n] = a
            mask[row, :n] = 1
        zeros = [0] * len(pairs)
        return Batch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels),
                     torch.tensor(sources or zeros), torch.tensor(task_ids or zeros))

    def prompts(self, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and mask, for batched generation."""
        encoded = [self.encode(ex)[0] for ex in examples]
        length = max(map(len, encoded))
        ids = torch.full((len(encoded), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, p in enumerate(encoded):
            ids[row, length - len(p):] = torch.tensor(p)
            mask[row, length - len(p):] = 1
        return ids, mask

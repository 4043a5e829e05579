"""Batched greedy decoding and the scorers (exact match, label accuracy, ROUGE-L)."""
from __future__ import annotations

import re

import torch

from .lessons.base import Example, Task

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case-folded, whitespace-collapsed, stripped."""
    return _SPACES.sub(" ", text).strip().casefold()


def exact_match(prediction: str, target: str) -> float:
    return float(normalize(prediction) == normalize(target))


def label_match(prediction: str, target: str) -> float:
    """Label accuracy: the first line of the answer, without trailing punctuation, is the gold label."""
    first_line = prediction.strip().split("\n", 1)[0] if prediction.strip() else ""
    return float(normalize(first_line).rstrip(".!") == normalize(target).rstrip(".!"))


def rouge_l(prediction: str, target: str) -> float:
    """ROUGE-L F1 over whitespace words of the normalised texts (TRACE scores generation this way).

    Our own 15 lines: the `rouge-score` package would pull nltk and absl for one longest common
    subsequence. F1 = 2PR / (P + R) with P = LCS / |prediction|, R = LCS / |target|."""
    pred, gold = normalize(prediction).split(), normalize(target).split()
    if not pred or not gold:
        return float(pred == gold)
    prev = [0] * (len(gold) + 1)
    for word in pred:
        row = [0]
        for j, other in enumerate(gold):
            row.append(prev[j] + 1 if word == other else max(prev[j + 1], row[j]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


SCORE_FUNCTIONS = {"exact": exact_match, "label": label_match, "rougeL": rouge_l}


@torch.no_grad()
def greedy_generate(model, input_ids, attention_mask, max_new_tokens: int, eos_id: int) -> list[list[int]]:
    """Greedy decoding of a left-padded batch with a KV cache; stops when every row has ended."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True)
    past, mask, pos = out.past_key_values, attention_mask, positions[:, -1:]
    token = out.logits[:, -1].argmax(-1)
    steps, done = [token], token == eos_id
    for _ in range(max_new_tokens - 1):
        if bool(done.all()):
            break
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        pos = pos + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=pos,
                    past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1].argmax(-1)
        steps.append(token)
        done |= token == eos_id
    tokens = torch.stack(steps, dim=1).tolist()
    return [row[: row.index(eos_id)] if eos_id in row else row for row in tokens]


def answer_budget(encoder, examples: list[Example]) -> int:
    """Tokens to generate: the longest gold answer (with its end token) plus a little slack."""
    return max(len(encoder.encode(ex)[1]) for ex in examples) + 2


@torch.no_grad()
def generate_answers(model, encoder, examples: list[Example], batch_size: int = 128,
                     max_new_tokens: int | None = None, device=None) -> list[str]:
    device = device or next(model.parameters()).device
    budget = max_new_tokens or answer_budget(encoder, examples)
    answers: list[str] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        ids, mask = encoder.prompts(chunk)
        rows = greedy_generate(model, ids.to(device), mask.to(device), budget, encoder.tokenizer.eos_token_id)
        answers += [encoder.tokenizer.decode(r) for r in rows]
    return answers


def score_task(task: Task, answers: list[str]) -> float:
    score = SCORE_FUNCTIONS[task.scorer]
    return sum(score(a, ex.output) for a, ex in zip(answers, task.eval)) / len(task.eval)

"""The default lesson (v2): five tasks the instruction-tuned tiny base has not seen, built from skills it has.

Design (README "The default lesson"):
- none of the five is a pretraining family (`lessons/corpus.py`; a test checks names and instructions),
  but each composes skills the base was tuned on (first/last letter, copying, "does the word contain
  the letter?", starts-with-a-vowel), so a task is learned in 10-40 steps while the base's zero-shot
  score on it stays low (0.07 on average): a user still watches each task being learned. Measured
  alternatives that were dropped: parity (even/odd) reached only 0.56-0.77 in 40-60 steps, the digit
  sum 0.22 in 60 (README, "The default lesson");
- label tasks and short generative answers (scored by exact match; the label tasks by label accuracy);
- every task has 8 training paraphrases and 2 held-out ones: evaluation prompts use *only* the held-out
  phrasings, so the routers of SwitchCIT, expansion and LCIA meet instructions they never saw;
- held-out inputs never occur in training (split by input value);
- related pairs: `last_two` / `first_two` read the same words and are phrased alike (TF-IDF similarity
  0.44 as LCIA scores it, pairwise, >= its tau 0.30: first_two retrains last_two's group, so LCIA's
  adaptive EMA runs);
  `has_seven` / `last_digit` read the same numbers; `has_seven` / `vowel_end` share the answers yes/no;
  `vowel_end` asks about the ending that `last_two` copies. Words and numbers are otherwise unrelated.
Everything is generated from the seed; nothing is downloaded.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from .base import Example, Lesson, Task

VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnpqrstvwxyz"


@dataclass(frozen=True)
class TaskSpec:
    domain: str                          # "words" or "numbers": which generated inputs it reads
    rule: Callable[[str], str]
    train_instructions: tuple[str, ...]
    eval_instructions: tuple[str, ...]   # held out: never in training
    scorer: str
    description: str
    labels: tuple[str, ...] = ()


SPECS: dict[str, TaskSpec] = {
    "last_two": TaskSpec(
        "words", lambda w: w[-2:],
        ("What are the last two letters of the word?", "Give the last two letters.",
         "Write the last two letters of the word.", "Which two letters does the word end with?",
         "Return the last two characters.", "Copy the two letters at the end of the word.",
         "Tell me the word's last two letters.", "Name the two last letters."),
        ("Output the two letters that close the word.", "Which pair of letters comes last in the word?"),
        "exact", "made-up word -> its last two letters"),
    "has_seven": TaskSpec(
        "numbers", lambda x: "yes" if "7" in x else "no",
        ("Does the number contain the digit 7?", "Is there a 7 in the number?", "Does a 7 appear in the number?",
         "Contains 7? Answer yes or no.", "Check if the digit 7 is in the number.",
         "Is the digit seven anywhere in the number?", "Answer yes if the number has a 7.",
         "Can you find a 7 in the number?"),
        ("Is a seven among the digits?", "Say yes when the number includes the digit 7."),
        "label", "3-digit number -> yes / no (contains the digit 7)", ("yes", "no")),
    "first_two": TaskSpec(
        "words", lambda w: w[:2],
        ("What are the first two letters of the word?", "Give the first two letters.",
         "Write the first two letters of the word.", "Which two letters does the word start with?",
         "Return the first two characters.", "Copy the two letters at the start of the word.",
         "Tell me the word's first two letters.", "Name the two first letters."),
        ("Output the two letters that open the word.", "Which pair of letters comes first in the word?"),
        "exact", "the same kind of words -> its first two letters (phrased like last_two)"),
    "last_digit": TaskSpec(
        "numbers", lambda x: x[-1],
        ("What is the last digit of the number?", "Give the last digit.", "Write the number's final digit.",
         "Which digit does the number end with?", "Return the last digit.", "Copy the digit at the end.",
         "Tell me the number's last digit.", "Name the ending digit."),
        ("Output the digit that closes the number.", "Which digit comes last in the number?"),
        "exact", "the same 3-digit numbers -> their last digit"),
    "vowel_end": TaskSpec(
        "words", lambda w: "yes" if w[-1] in VOWELS else "no",
        ("Does the word end with a vowel?", "Is the last letter of the word a vowel?",
         "Does this word finish with a vowel?", "Ends in a vowel? Answer yes or no.",
         "Check if the final letter is a vowel.", "Is the word's ending letter a vowel?",
         "Answer yes if the word ends in a vowel.", "Does the word have a vowel at the end?"),
        ("Is a vowel the closing letter here?", "Say yes when the word's final letter is a vowel."),
        "label", "made-up word -> yes / no (ends with a vowel)", ("yes", "no")),
}
TASK_ORDER = ["last_two", "has_seven", "first_two", "last_digit", "vowel_end"]


def _numbers(rng: random.Random) -> tuple[list[str], list[str]]:
    values = [str(v) for v in range(100, 1000)]
    rng.shuffle(values)
    return values[:700], values[700:]


def _words(rng: random.Random, n: int) -> list[str]:
    """Made-up lower-case words of 4-7 letters; about half end in a vowel."""
    found: set[str] = set()
    while len(found) < n:
        length = rng.randint(4, 7)
        start_vowel = rng.random() < 0.3
        letters = [rng.choice(VOWELS if (i % 2 == 0) == start_vowel else CONSONANTS) for i in range(length)]
        letters[-1] = rng.choice(VOWELS if rng.random() < 0.5 else CONSONANTS)
        found.add("".join(letters))
    ordered = sorted(found)
    rng.shuffle(ordered)
    return ordered


def _examples(spec: TaskSpec, inputs: list[str], instructions: tuple[str, ...], rng: random.Random) -> list[Example]:
    # cycle through the phrasings so every one is used about equally often
    return [Example(instructions[(i + rng.randrange(len(instructions))) % len(instructions)], x, spec.rule(x))
            for i, x in enumerate(inputs)]


def default_lesson(seed: int = 0, n_eval: int = 64) -> Lesson:
    """Build the default lesson; identical for identical seeds."""
    rng = random.Random(f"default-lesson-v2-{seed}")
    numbers = _numbers(rng)
    words = _words(rng, 1000)
    inputs = {"numbers": numbers, "words": (words[:800], words[800:])}
    tasks = []
    for name in TASK_ORDER:
        spec = SPECS[name]
        train_inputs, eval_inputs = inputs[spec.domain]
        task_rng = random.Random(f"{seed}-{name}")
        tasks.append(Task(
            name=name,
            train=_examples(spec, train_inputs, spec.train_instructions, task_rng),
            eval=_examples(spec, eval_inputs[:n_eval], spec.eval_instructions, task_rng),
            scorer=spec.scorer,
            description=spec.description,
            labels=spec.labels,
        ))
    return Lesson("default", tasks, description="Five new tasks built from the base's skills: words and numbers, "
                                                "labels and short answers; held-out phrasings at evaluation.")

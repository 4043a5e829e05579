"""The classic lesson (the default until the instruction-tuned base): five rule-based label tasks that a
randomly initialised tiny byte model learns in ~100 steps each. `--lesson classic`.

Design (see README "The classic lesson"):
- every answer is one short label word, so a 2-layer model learns a task in ~100 steps;
- each task has 8+ paraphrased instructions (InsCL and the embedding views need a distribution);
- held-out inputs never appear in training (split by input value, not by example);
- related pairs: `parity` and `threshold` read the same 3-digit numbers with a different operation;
  `sign` is phrased like `parity` ("Is the number ... or ...?"); `vowel_end` and `has_z` both ask a
  yes/no question about the same made-up words. Number tasks and word tasks are unrelated.
- label sets overlap on purpose (yes/no in three tasks): training a later yes/no task overwrites the
  meaning of "yes" for an earlier one, which is what makes forgetting visible.
Everything is generated from the seed; nothing is downloaded.
"""
from __future__ import annotations

import random

from .base import Example, Lesson, Task

INSTRUCTIONS = {
    "parity": [
        "Is the number even or odd?",
        "Say whether this number is even or odd.",
        "Even or odd?",
        "Tell me if the number is odd or even.",
        "Classify the number as even or odd.",
        "Is this an even or an odd number?",
        "Decide: is the number even, or odd?",
        "Answer even or odd for the number.",
    ],
    "threshold": [
        "Is the number greater than 500?",
        "Is this number bigger than 500?",
        "Does the number exceed 500?",
        "Is the value above 500?",
        "Answer yes if the number is more than 500.",
        "Is it larger than five hundred?",
        "Check whether the number is over 500.",
        "Greater than 500? Answer yes or no.",
    ],
    "sign": [
        "Is the number positive or negative?",
        "Say whether this number is positive or negative.",
        "Positive or negative?",
        "Tell me if the number is negative or positive.",
        "Classify the number as positive or negative.",
        "Is this a positive or a negative number?",
        "Decide: is the number positive, or negative?",
        "Answer positive or negative for the number.",
    ],
    "vowel_end": [
        "Does the word end with a vowel?",
        "Is the last letter of the word a vowel?",
        "Does this word finish with a vowel?",
        "Ends in a vowel? Answer yes or no.",
        "Check if the final letter is a vowel.",
        "Is the word's ending letter a vowel?",
        "Answer yes if the word ends in a vowel.",
        "Does the word have a vowel at the end?",
    ],
    "has_z": [
        "Does the word contain the letter z?",
        "Is there a z in this word?",
        "Does this word have a z in it?",
        "Contains z? Answer yes or no.",
        "Check if the letter z appears in the word.",
        "Is the letter z anywhere in the word?",
        "Answer yes if the word has a z.",
        "Can you find a z in the word?",
    ],
}

DESCRIPTIONS = {
    "parity": "3-digit number -> even / odd (last digit)",
    "threshold": "same 3-digit numbers -> yes / no (greater than 500)",
    "sign": "signed number -> positive / negative (phrased like parity)",
    "vowel_end": "made-up word -> yes / no (ends with a vowel)",
    "has_z": "same kind of words -> yes / no (contains z)",
}

TASK_ORDER = ["parity", "threshold", "sign", "vowel_end", "has_z"]
VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnprstvwxyz"


def _numbers(rng: random.Random) -> tuple[list[str], list[str]]:
    values = list(range(100, 1000))
    rng.shuffle(values)
    return [str(v) for v in values[:700]], [str(v) for v in values[700:]]


def _signed(rng: random.Random) -> tuple[list[str], list[str]]:
    values = [v for v in range(-999, 1000) if v != 0]
    rng.shuffle(values)
    return [str(v) for v in values[:700]], [str(v) for v in values[700:900]]


def _words(rng: random.Random, n: int) -> list[str]:
    """Made-up lower-case words of 3-7 letters; about half contain a z, half end in a vowel."""
    words: set[str] = set()
    while len(words) < n:
        length = rng.randint(3, 7)
        letters = [rng.choice(VOWELS if i % 2 else CONSONANTS.replace("z", "")) for i in range(length)]
        if rng.random() < 0.5:
            letters[rng.randrange(length)] = "z"
        if rng.random() < 0.5:
            letters[-1] = rng.choice(VOWELS)
        else:
            letters[-1] = rng.choice(CONSONANTS)
        words.add("".join(letters))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


LABELERS = {
    "parity": lambda x: "even" if int(x) % 2 == 0 else "odd",
    "threshold": lambda x: "yes" if int(x) > 500 else "no",
    "sign": lambda x: "positive" if int(x) > 0 else "negative",
    "vowel_end": lambda w: "yes" if w[-1] in VOWELS else "no",
    "has_z": lambda w: "yes" if "z" in w else "no",
}
LABELS = {"parity": ("even", "odd"), "threshold": ("yes", "no"), "sign": ("positive", "negative"),
          "vowel_end": ("yes", "no"), "has_z": ("yes", "no")}


def _examples(name: str, inputs: list[str], rng: random.Random) -> list[Example]:
    paraphrases = INSTRUCTIONS[name]
    # cycle through the paraphrases so every one is used about equally often
    return [Example(paraphrases[(i + rng.randrange(len(paraphrases))) % len(paraphrases)], x, LABELERS[name](x))
            for i, x in enumerate(inputs)]


def classic_lesson(seed: int = 0, n_eval: int = 64) -> Lesson:
    """Build the classic lesson; identical for identical seeds (the same examples as when it was the default)."""
    rng = random.Random(f"default-lesson-{seed}")
    numbers_train, numbers_eval = _numbers(rng)
    signed_train, signed_eval = _signed(rng)
    words = _words(rng, 1100)
    words_train, words_eval = words[:800], words[800:]
    inputs = {
        "parity": (numbers_train, numbers_eval),
        "threshold": (numbers_train, numbers_eval),
        "sign": (signed_train, signed_eval),
        "vowel_end": (words_train, words_eval),
        "has_z": (words_train, words_eval),
    }
    tasks = []
    for name in TASK_ORDER:
        train_inputs, eval_inputs = inputs[name]
        task_rng = random.Random(f"{seed}-{name}")
        tasks.append(Task(
            name=name,
            train=_examples(name, train_inputs, task_rng),
            eval=_examples(name, eval_inputs[:n_eval], task_rng),
            scorer="label",
            description=DESCRIPTIONS[name],
            labels=LABELS[name],
        ))
    return Lesson("classic", tasks, description="Five rule-based label tasks; numbers then words.")

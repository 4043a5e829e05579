"""The pretraining corpus of the instruction-tuned tiny base: 36 generated task families.

Each family has a kind ("label": a closed answer set, or "generative": a short free answer), at least
eight paraphrased instructions, and a generator of (input, answer) pairs over one of a few input
domains (made-up words, numbers, digit lists, word pairs, short records). `cit_core/pretrain.py` draws
an endless stream of examples from them; the default lesson (v2) is built from these *skills* but none
of its tasks is a family here (a test checks the names and the rules).

Held-out inputs: an input whose CRC-32 falls in the reserved bucket (`is_reserved`) is never drawn for
pretraining. The "general" suite (`general_suite`) uses only those, so it measures what the base knew,
on inputs it never saw, at every evaluation of a continual run (TRACE's general-ability column).
Everything is generated from seeds; nothing is downloaded.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Callable

from .base import Example, Task

VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnpqrstvwxyz"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
NAMES = ["ada", "ben", "cora", "dan", "eva", "finn", "gus", "hana", "ivo", "jon", "kim", "lea", "max",
         "nina", "otto", "pia", "rex", "sara", "tom", "uma", "vic", "wen", "yan", "zoe"]
CITIES = ["oslo", "rome", "lima", "baku", "kiev", "nice", "pune", "riga", "bern", "doha", "graz", "ulm",
          "york", "lyon", "pisa", "kobe", "cork", "gent", "metz", "faro"]
COLORS = ["red", "blue", "green", "pink", "gray", "black", "white", "brown", "gold", "teal"]
RESERVED_BUCKETS = 10     # 1 in 10 inputs is reserved for the general suite


def is_reserved(text: str) -> bool:
    """Inputs in this bucket never occur in pretraining; the general suite draws only from it."""
    return zlib.crc32(text.encode("utf-8")) % RESERVED_BUCKETS == 0


# -- input domains --------------------------------------------------------------------------------
def word(rng: random.Random, lo: int = 3, hi: int = 7) -> str:
    """A made-up lower-case word: pronounceable (consonant/vowel) most of the time, random otherwise."""
    n = rng.randint(lo, hi)
    if rng.random() < 0.7:
        start = rng.random() < 0.5
        return "".join(rng.choice(VOWELS if (i % 2 == 0) == start else CONSONANTS) for i in range(n))
    return "".join(rng.choice(LETTERS) for _ in range(n))


def number(rng: random.Random, lo: int = 0, hi: int = 999) -> int:
    return rng.randint(lo, hi)


def digits(rng: random.Random, lo: int = 3, hi: int = 5) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(lo, hi))]


def words(rng: random.Random, lo: int = 2, hi: int = 4) -> list[str]:
    return [word(rng, 2, 5) for _ in range(rng.randint(lo, hi))]


def record(rng: random.Random) -> dict[str, str]:
    return {"name": rng.choice(NAMES), "city": rng.choice(CITIES), "age": str(rng.randint(18, 90)),
            "color": rng.choice(COLORS)}


def show_record(rec: dict[str, str], rng: random.Random) -> str:
    keys = list(rec)
    rng.shuffle(keys)
    return ", ".join(f"{k}: {rec[k]}" for k in keys)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


# -- families -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    name: str
    kind: str                                   # "label" or "generative"
    instructions: tuple[str, ...]
    make: Callable[[random.Random], tuple[str, str]]   # rng -> (input, answer)
    labels: tuple[str, ...] = ()


def _w(fn):
    """A family over one made-up word."""
    def make(rng):
        w = word(rng)
        return w, fn(w)
    return make


def _n(fn, lo=0, hi=999):
    def make(rng):
        n = number(rng, lo, hi)
        return str(n), fn(n)
    return make


def _pair_numbers(fn, hi=99):
    def make(rng):
        a, b = number(rng, 0, hi), number(rng, 0, hi)
        return f"{a} {b}", fn(a, b)
    return make


def _digits(fn):
    def make(rng):
        d = digits(rng)
        return " ".join(map(str, d)), fn(d)
    return make


def _words(fn, lo=2, hi=4):
    def make(rng):
        ws = words(rng, lo, hi)
        return " ".join(ws), fn(ws)
    return make


def _subtract(rng):
    a, b = sorted((number(rng, 0, 99), number(rng, 0, 99)), reverse=True)
    return f"{a} {b}", str(a - b)


def _palindrome(rng):
    w = word(rng, 3, 6)
    if rng.random() < 0.5:   # half of them are palindromes, or the label is almost always "no"
        w = w[: (len(w) + 1) // 2] + w[: len(w) // 2][::-1]
    return w, yes_no(w == w[::-1])


def _same(rng):
    a = word(rng)
    b = a if rng.random() < 0.5 else word(rng, len(a), len(a))
    return f"{a} {b}", "same" if a == b else "different"


def _is_sorted(rng):
    d = digits(rng)
    if rng.random() < 0.5:
        d = sorted(d)
    return " ".join(map(str, d)), yes_no(d == sorted(d))


def _is_upper(rng):
    w = word(rng)
    w = w.upper() if rng.random() < 0.5 else w
    return w, yes_no(w.isupper())


def _double_letter(rng):
    w = word(rng, 3, 6)
    if rng.random() < 0.5:
        i = rng.randrange(len(w))
        w = w[:i + 1] + w[i] + w[i + 1:]
    return w, yes_no(any(a == b for a, b in zip(w, w[1:])))


def _count_letter(rng):
    w = word(rng, 4, 8)
    ch = rng.choice(w) if rng.random() < 0.8 else rng.choice(LETTERS)
    return f"{w} {ch}", str(w.count(ch))


def _field(key):
    def make(rng):
        rec = record(rng)
        return show_record(rec, rng), rec[key]
    return make


def _contains_letter(rng):
    w = word(rng, 4, 8)
    ch = rng.choice(w) if rng.random() < 0.5 else rng.choice(LETTERS)
    return f"{w} {ch}", yes_no(ch in w)


def _compare(rng):
    a, b = number(rng, 0, 999), number(rng, 0, 999)
    while a == b:
        b = number(rng, 0, 999)
    return f"{a} {b}", "first" if a > b else "second"


def _longer(rng):
    a, b = word(rng), word(rng)
    while len(a) == len(b):
        b = word(rng)
    return f"{a} {b}", "first" if len(a) > len(b) else "second"


FAMILIES: dict[str, Family] = {f.name: f for f in [
    # ---- generative, one word ----
    Family("copy", "generative", (
        "Repeat the word.", "Copy the word exactly.", "Write the word again.", "Say the word back.",
        "Echo the input.", "Return the word unchanged.", "Copy this.", "Give the same word back."),
        _w(lambda w: w)),
    Family("reverse", "generative", (
        "Reverse the word.", "Write the word backwards.", "Spell the word in reverse.",
        "What is the word reversed?", "Give the letters in reverse order.", "Flip the word around.",
        "Read the word from right to left.", "Turn the word back to front."),
        _w(lambda w: w[::-1])),
    Family("upper", "generative", (
        "Write the word in capital letters.", "Convert the word to upper case.", "Uppercase the word.",
        "Make every letter a capital.", "Rewrite the word in all caps.", "Change the word to upper case.",
        "Capitalise all the letters.", "Give the word in uppercase."),
        _w(str.upper)),
    Family("first_letter", "generative", (
        "What is the first letter of the word?", "Give the first letter.", "Which letter does the word start with?",
        "Write the word's first letter.", "Name the initial letter.", "What letter comes first in the word?",
        "Return the first character.", "Tell me the starting letter."),
        _w(lambda w: w[0])),
    Family("last_letter", "generative", (
        "What is the last letter of the word?", "Give the last letter.", "Which letter does the word end with?",
        "Write the word's final letter.", "Name the ending letter.", "What letter comes last in the word?",
        "Return the last character.", "Tell me the final letter."),
        _w(lambda w: w[-1])),
    Family("length", "generative", (
        "How many letters does the word have?", "Count the letters in the word.", "What is the length of the word?",
        "Give the number of letters.", "How long is the word?", "Tell me how many characters the word has.",
        "Count the characters.", "Number of letters in the word?"),
        _w(lambda w: str(len(w)))),
    Family("sort_letters", "generative", (
        "Sort the letters of the word.", "Put the letters in alphabetical order.", "Arrange the letters from a to z.",
        "Write the letters sorted.", "Order the letters alphabetically.", "Give the letters in sorted order.",
        "Sort these letters.", "Alphabetise the letters of the word."),
        _w(lambda w: "".join(sorted(w)))),
    Family("double_letters", "generative", (
        "Write every letter twice.", "Double each letter of the word.", "Repeat each letter two times.",
        "Say each letter twice in a row.", "Double every character.", "Write the word with each letter doubled.",
        "Make each letter appear twice.", "Duplicate every letter."),
        _w(lambda w: "".join(c + c for c in w))),
    Family("drop_first", "generative", (
        "Remove the first letter.", "Write the word without its first letter.", "Drop the first letter of the word.",
        "Delete the initial letter.", "Leave out the first letter.", "Cut off the first letter.",
        "Give the word minus its first letter.", "Strip the first character."),
        _w(lambda w: w[1:])),
    Family("count_vowels", "generative", (
        "How many vowels are in the word?", "Count the vowels.", "Give the number of vowels in the word.",
        "How many of the letters are vowels?", "Count a, e, i, o and u in the word.", "Number of vowels?",
        "Tell me how many vowels the word has.", "How many vowels does this word contain?"),
        _w(lambda w: str(sum(c in VOWELS for c in w)))),
    Family("remove_vowels", "generative", (
        "Remove the vowels from the word.", "Write the word without vowels.", "Delete every vowel.",
        "Drop the vowels.", "Keep only the consonants.", "Strip out a, e, i, o and u.",
        "Give the word with its vowels removed.", "Leave out all vowels."),
        _w(lambda w: "".join(c for c in w if c not in VOWELS) or "-")),
    Family("capitalize", "generative", (
        "Capitalise the first letter.", "Make the first letter a capital.", "Start the word with a capital letter.",
        "Write the word with an initial capital.", "Uppercase only the first letter.", "Capitalize the word.",
        "Give the word in title case.", "Turn the first letter into a capital."),
        _w(lambda w: w[0].upper() + w[1:])),
    Family("repeat_twice", "generative", (
        "Write the word twice.", "Say the word two times.", "Repeat the word twice, with a space.",
        "Give the word two times.", "Double the word.", "Write it twice.", "Echo the word two times.",
        "Repeat it once more after itself."),
        _w(lambda w: f"{w} {w}")),
    # ---- generative, numbers ----
    Family("add", "generative", (
        "Add the two numbers.", "What is the sum of the numbers?", "Give the total of the two numbers.",
        "Add them up.", "Compute the sum.", "What do the two numbers add up to?", "Sum the numbers.",
        "Work out the first number plus the second."),
        _pair_numbers(lambda a, b: str(a + b))),
    Family("subtract", "generative", (
        "Subtract the second number from the first.", "What is the first number minus the second?",
        "Give the difference of the numbers.", "Take the second number away from the first.",
        "Compute the first minus the second.", "How much bigger is the first number?",
        "Work out the difference.", "First number minus second number?"),
        _subtract),
    Family("increment", "generative", (
        "Add one to the number.", "What number comes next?", "Give the number plus one.", "Increase the number by 1.",
        "What is one more than this?", "Count up by one.", "Write the next number.", "Number + 1?"),
        _n(lambda n: str(n + 1))),
    Family("decrement", "generative", (
        "Subtract one from the number.", "What number comes before?", "Give the number minus one.",
        "Decrease the number by 1.", "What is one less than this?", "Count down by one.",
        "Write the previous number.", "Number - 1?"),
        _n(lambda n: str(n - 1), lo=1)),
    Family("max_list", "generative", (
        "What is the largest number in the list?", "Give the biggest number.", "Find the maximum.",
        "Which number is the highest?", "Return the largest value.", "Pick the maximum of the list.",
        "Name the biggest one.", "What is the max?"),
        _digits(lambda d: str(max(d)))),
    Family("min_list", "generative", (
        "What is the smallest number in the list?", "Give the smallest number.", "Find the minimum.",
        "Which number is the lowest?", "Return the smallest value.", "Pick the minimum of the list.",
        "Name the smallest one.", "What is the min?"),
        _digits(lambda d: str(min(d)))),
    Family("sum_list", "generative", (
        "Add up the numbers in the list.", "What is the sum of the list?", "Give the total of the list.",
        "Sum all the numbers.", "Compute the total.", "What do the numbers in the list add up to?",
        "Add every number together.", "Total of the list?"),
        _digits(lambda d: str(sum(d)))),
    Family("sort_list", "generative", (
        "Sort the numbers from smallest to largest.", "Put the list in ascending order.", "Sort the list.",
        "Order the numbers, lowest first.", "Arrange the numbers in increasing order.",
        "Give the list sorted.", "Write the numbers sorted upwards.", "Sort these numbers ascending."),
        _digits(lambda d: " ".join(map(str, sorted(d))))),
    Family("count_items", "generative", (
        "How many numbers are in the list?", "Count the numbers.", "Give the length of the list.",
        "How many items does the list have?", "Count the items.", "Number of entries in the list?",
        "Tell me how many numbers there are.", "What is the size of the list?"),
        _digits(lambda d: str(len(d)))),
    # ---- generative, several words / records ----
    Family("first_word", "generative", (
        "What is the first word?", "Give the first word.", "Return the first word of the text.",
        "Which word comes first?", "Write only the first word.", "Name the opening word.",
        "Copy the first word.", "Tell me the word at the start."),
        _words(lambda ws: ws[0])),
    Family("last_word", "generative", (
        "What is the last word?", "Give the last word.", "Return the last word of the text.",
        "Which word comes last?", "Write only the last word.", "Name the final word.",
        "Copy the last word.", "Tell me the word at the end."),
        _words(lambda ws: ws[-1])),
    Family("count_words", "generative", (
        "How many words are there?", "Count the words.", "Give the number of words.",
        "How many words does the text have?", "Count the words in the text.", "Number of words?",
        "Tell me how many words you see.", "What is the word count?"),
        _words(lambda ws: str(len(ws)), 1, 5)),
    Family("join_dash", "generative", (
        "Join the words with dashes.", "Connect the words using a dash.", "Put a dash between the words.",
        "Link the words with hyphens.", "Replace the spaces with dashes.", "Write the words joined by -.",
        "Hyphenate the words together.", "Join them with a hyphen."),
        _words(lambda ws: "-".join(ws))),
    Family("swap_words", "generative", (
        "Swap the two words.", "Write the words in the other order.", "Exchange the two words.",
        "Put the second word first.", "Reverse the order of the two words.", "Switch the words around.",
        "Give the words swapped.", "Write the second word, then the first."),
        _words(lambda ws: f"{ws[1]} {ws[0]}", 2, 2)),
    Family("get_name", "generative", (
        "What is the name?", "Give the name in the record.", "Extract the name.", "Who is this record about?",
        "Return the value of name.", "Find the name field.", "Which name is given?", "Read off the name."),
        _field("name")),
    Family("get_city", "generative", (
        "What is the city?", "Give the city in the record.", "Extract the city.", "Where does this person live?",
        "Return the value of city.", "Find the city field.", "Which city is given?", "Read off the city."),
        _field("city")),
    Family("get_age", "generative", (
        "What is the age?", "Give the age in the record.", "Extract the age.", "How old is this person?",
        "Return the value of age.", "Find the age field.", "Which age is given?", "Read off the age."),
        _field("age")),
    Family("count_letter", "generative", (
        "How many times does the letter appear in the word?", "Count the given letter in the word.",
        "How often does the second item occur in the word?", "Count occurrences of the letter.",
        "Give the number of times the letter is used.", "How many of that letter are in the word?",
        "Count that letter.", "Tell me how many times the letter shows up."),
        _count_letter),
    # ---- label tasks ----
    Family("starts_vowel", "label", (
        "Does the word start with a vowel?", "Is the first letter a vowel?", "Does this word begin with a vowel?",
        "Starts with a vowel? Answer yes or no.", "Check if the first letter is a vowel.",
        "Is the word's opening letter a vowel?", "Answer yes if the word begins with a vowel.",
        "Is there a vowel at the start of the word?"),
        _w(lambda w: yes_no(w[0] in VOWELS)), ("yes", "no")),
    Family("palindrome", "label", (
        "Is the word a palindrome?", "Does the word read the same backwards?", "Is this a palindrome?",
        "Palindrome? Answer yes or no.", "Check if the word is the same reversed.",
        "Is the word identical when reversed?", "Answer yes if the word is a palindrome.",
        "Does the word read the same both ways?"),
        _palindrome, ("yes", "no")),
    Family("compare", "label", (
        "Which number is larger, the first or the second?", "Is the first or the second number bigger?",
        "Which is greater: first or second?", "Say first if the first number is larger, else second.",
        "Which of the two numbers is bigger?", "Pick the larger number: first or second?",
        "Compare the numbers: which one is greater?", "Which number is higher, first or second?"),
        _compare, ("first", "second")),
    Family("longer_word", "label", (
        "Which word is longer, the first or the second?", "Is the first or the second word longer?",
        "Which word has more letters: first or second?", "Say first if the first word is longer, else second.",
        "Which of the two words is longer?", "Pick the longer word: first or second?",
        "Compare the words: which one is longer?", "Which word has more characters, first or second?"),
        _longer, ("first", "second")),
    Family("same_words", "label", (
        "Are the two words the same or different?", "Same or different?", "Are these words identical?",
        "Do the two words match? Say same or different.", "Compare the words: same or different?",
        "Is the second word the same as the first?", "Check whether the words are equal.",
        "Tell me if the words are the same or different."),
        _same, ("same", "different")),
    Family("is_sorted", "label", (
        "Is the list sorted?", "Are the numbers in ascending order?", "Is this list in order?",
        "Sorted? Answer yes or no.", "Check if the numbers go from small to large.",
        "Are the numbers sorted from lowest to highest?", "Answer yes if the list is sorted.",
        "Is the list already in increasing order?"),
        _is_sorted, ("yes", "no")),
    Family("is_upper", "label", (
        "Is the word in capital letters?", "Is the word written in upper case?", "Is it all caps?",
        "Uppercase? Answer yes or no.", "Check if every letter is a capital.", "Are all letters capitals?",
        "Answer yes if the word is in upper case.", "Is this word shouted in caps?"),
        _is_upper, ("yes", "no")),
    Family("double_letter", "label", (
        "Does the word have a doubled letter?", "Are there two equal letters in a row?",
        "Does a letter repeat right after itself?", "Double letter? Answer yes or no.",
        "Check if the word contains the same letter twice in a row.", "Is any letter doubled?",
        "Answer yes if two neighbouring letters are the same.", "Does the word have a double letter in it?"),
        _double_letter, ("yes", "no")),
    Family("contains_letter", "label", (
        "Does the word contain the given letter?", "Is the letter in the word?", "Does the letter appear in the word?",
        "Contains the letter? Answer yes or no.", "Check if the word has that letter.",
        "Is the second item found in the word?", "Answer yes if the letter occurs in the word.",
        "Can you find the letter in the word?"),
        _contains_letter, ("yes", "no")),
]}

# A spread of skills for the general suite (what the base knew): both kinds, every input domain.
GENERAL_FAMILIES = ("copy", "reverse", "upper", "first_letter", "last_letter", "length", "add",
                    "max_list", "first_word", "get_city", "starts_vowel", "compare", "same_words", "is_sorted")


def draw(family: Family, rng: random.Random, reserved: bool) -> Example:
    """One example of `family` whose input is (reserved=True) or is not (False) in the held-out bucket."""
    while True:
        text, answer = family.make(rng)
        if is_reserved(text) == reserved:
            return Example(rng.choice(family.instructions), text, answer)


def stream(seed: int):
    """The pretraining corpus: an endless, seeded stream of (family name, Example), families uniform."""
    rng = random.Random(f"pretrain-corpus-{seed}")
    names = list(FAMILIES)
    while True:
        name = rng.choice(names)
        yield name, draw(FAMILIES[name], rng, reserved=False)


def general_suite(n_per_family: int = 4) -> Task:
    """Held-out examples of the pretraining families: the 'general' column of every continual run.

    Fixed (seed-independent), so every run and every method is scored on the same prompts; exact match,
    since the suite mixes label and generative families. Four prompts per family (56 in all): with six,
    the suite took a quarter of each evaluation of the default run (bench/RESULTS.md)."""
    examples: list[Example] = []
    for name in GENERAL_FAMILIES:
        rng = random.Random(f"general-{name}")
        chosen: dict[str, Example] = {}
        while len(chosen) < n_per_family:
            ex = draw(FAMILIES[name], rng, reserved=True)
            chosen.setdefault(ex.input, ex)
        examples += chosen.values()
    return Task("general", train=examples, eval=examples, scorer="exact",
                description=f"held-out inputs of {len(GENERAL_FAMILIES)} pretraining families")

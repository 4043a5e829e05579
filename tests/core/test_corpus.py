"""The pretraining corpus: enough families and paraphrases, both kinds, and held-out inputs for 'general'."""
import itertools

from cit_core.lessons.corpus import FAMILIES, GENERAL_FAMILIES, general_suite, is_reserved, stream


def test_families_kinds_and_paraphrases():
    assert len(FAMILIES) >= 30
    kinds = [f.kind for f in FAMILIES.values()]
    assert kinds.count("label") >= 8 and kinds.count("generative") >= 20
    for family in FAMILIES.values():
        assert len(set(family.instructions)) >= 8, family.name


def test_stream_is_seeded_and_never_draws_a_reserved_input():
    first = list(itertools.islice(stream(0), 2000))
    assert first[:50] == list(itertools.islice(stream(0), 50))
    assert first[:50] != list(itertools.islice(stream(1), 50))
    assert not any(is_reserved(ex.input) for _, ex in first)
    assert {name for name, _ in first} == set(FAMILIES)      # every family is drawn


def test_general_suite_is_held_out_and_fixed():
    suite = general_suite()
    assert suite.eval == general_suite().eval and suite.scorer == "exact"
    assert all(is_reserved(ex.input) for ex in suite.eval)
    assert {name for name in GENERAL_FAMILIES} <= set(FAMILIES)
    assert len(suite.eval) == len(GENERAL_FAMILIES) * 4


def test_families_answer_correctly_on_samples():
    by_name = {}
    for name, ex in itertools.islice(stream(3), 4000):
        by_name.setdefault(name, []).append(ex)
    for ex in by_name["reverse"]:
        assert ex.output == ex.input[::-1]
    for ex in by_name["add"]:
        a, b = map(int, ex.input.split())
        assert int(ex.output) == a + b
    for ex in by_name["sort_list"]:
        assert ex.output.split() == sorted(ex.input.split())
    for ex in by_name["get_city"]:
        assert f"city: {ex.output}" in ex.input

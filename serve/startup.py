"""What the server does once before it serves: import every library a run may need.

Why: transformers and peft import their model classes lazily, and two sessions starting their first runs
at the same moment raced inside those lazy imports ("cannot import name 'LlamaConfig'", "'NoneType'
object has no attribute 'type'": 2 of 8 sessions on a cold start, issue 14). Importing them here, on
one thread before the first request, leaves nothing to race over.
"""
from __future__ import annotations

import importlib

# module -> names a run resolves from it (a `from X import Y` in the engine, often inside a function)
WARM = {
    "transformers": ("AutoModelForCausalLM", "AutoTokenizer", "LlamaConfig", "LlamaForCausalLM"),
    "peft": ("LoraConfig", "PeftModel", "get_peft_model"),
    "safetensors.torch": ("load_file", "save_file"),
    "accelerate": ("PartialState",),
    "sklearn.cluster": ("DBSCAN",),
    "sklearn.feature_extraction.text": ("CountVectorizer", "TfidfVectorizer", "ENGLISH_STOP_WORDS"),
    "sklearn.metrics.pairwise": ("cosine_similarity",),
    "ot": ("emd2",),
    "cit_core.trainer": ("Trainer",),
}


def warm_imports() -> list[str]:
    """Import WARM (resolving each name, which is what triggers a lazy module's real import); returns
    the modules imported. A missing optional library is left for the run that needs it to report."""
    done = []
    for module, names in WARM.items():
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            continue
        for name in names:
            getattr(loaded, name, None)
        done.append(module)
    return done


__all__ = ["warm_imports", "WARM"]

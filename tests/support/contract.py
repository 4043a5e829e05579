"""The contract table over every registered method (tests/methods/test_methods_contract.py runs it; the
chunked-training and SmolLM2 tests reuse its rows). Adding a method adds one row here."""

# one row per method: options that make the short run exercise the method's own code path
CONTRACT = {
    "seqft": {},
    "seqft_lora": {},
    "multitask": {},
    "replay": {"per_task": 8, "mix_ratio": 0.5},
    "inscl": {"per_task": 8, "mix_ratio": 0.5},
    "ewc": {"batches": 2},
    "mas": {"batches": 2},
    "tir": {"batches": 2},
    "expansion": {"init": "similar"},
    "oracle_lora": {},
    "switchcit": {},
    "ilora": {"buffer_size": 16},
    "lcia": {"tau": 0.0},   # τ = 0: task 2 retrains group 0 with DEMA on
}

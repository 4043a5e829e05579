"""A stand-in for Hugging Face's `spaces` package, for tests of the ZeroGPU path off a Space.

`GPU(fn)` runs every call of fn in a fresh spawned process, with the arguments and the result passed
by pickle: the constraint ZeroGPU's worker puts on a function (nothing it changes in place, and no
module state it builds, survives the call). A spawned process shares nothing with the caller, so it is
stricter than ZeroGPU's fork. `calls` counts the calls made in this process.
"""
import multiprocessing

calls: list[str] = []
durations: list[int] = []


def GPU(fn=None, duration=60):
    def wrap(function):
        def call(*args, **kwargs):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                result = pool.apply(function, args, kwargs)
            calls.append(function.__name__)
            return result
        durations.append(duration)
        return call
    return wrap(fn) if fn is not None else wrap

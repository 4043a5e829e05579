"""The Train handlers' outputs as the live-app tests read them over gradio_client."""
import socket

STATUS, MATRIX, MATRIX_MD, CURVES, LOSS, METRICS, LESSON = range(7)
SHORT = dict(lesson="default", files=[], method="seqft", model="tiny", steps_per_task=20, lr=1e-3,
             batch_size=16, eval_every=10, seed=0, replay_per_task=64, replay_mix_ratio=0.25,
             method_options="")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_skip(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"


def fold(stream: list) -> list:
    """The latest value of each output over a stream of yields (gr.skip() leaves the old value)."""
    latest = [None] * 7
    for out in stream:
        for i, value in enumerate(out):
            if not is_skip(value):
                latest[i] = value
    return latest

"""Small lessons and configs: enough to exercise every code path fast."""
from cit_core.config import RunConfig, TrainConfig
from cit_core.lessons import Lesson, default_lesson


def small_lesson(n_tasks: int = 2, n_train: int = 64, n_eval: int = 16) -> Lesson:
    """The first tasks of the default lesson, cut small: enough to exercise every code path fast."""
    full = default_lesson(seed=0, n_eval=n_eval)
    tasks = full.tasks[:n_tasks]
    for task in tasks:
        task.train = task.train[:n_train]
    return Lesson("small", tasks)


def small_config(method: str = "seqft", steps: int = 4, **options) -> RunConfig:
    return RunConfig(method=method, train=TrainConfig(steps_per_task=steps, batch_size=8, eval_every=2),
                     method_options=options)

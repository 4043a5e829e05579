"""Lessons: the built-in generated ones and loaders for lesson files."""
from __future__ import annotations

from .base import Example, Lesson, Task
from .classic import classic_lesson
from .default import default_lesson

# "default": v2, made for the instruction-tuned base; "classic": the earlier default (label rules that a
# randomly initialised model learns)
BUILTIN = {"default": default_lesson, "classic": classic_lesson}


def load_lesson(cfg, seed: int = 0) -> Lesson:
    """The lesson a LessonConfig names: a built-in (generated from the seed) or files."""
    if cfg.files:
        from .files import load_lesson_files
        lesson = load_lesson_files(cfg.files)
        for task in lesson.tasks:
            task.eval = task.eval[: cfg.n_eval]
        return lesson
    if cfg.name not in BUILTIN:
        raise ValueError(f"unknown lesson {cfg.name!r}; built-in lessons: {sorted(BUILTIN)}")
    return BUILTIN[cfg.name](seed=seed, n_eval=cfg.n_eval)


__all__ = ["Example", "Lesson", "Task", "default_lesson", "classic_lesson", "load_lesson", "BUILTIN"]

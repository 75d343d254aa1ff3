"""Scheduler policies: the protocol (:mod:`.base`) and the built-in GPU-sharing policies."""

from .base import MAX_SCORE, BasePolicy, Placement, Scheduler, SchedulerPolicy

__all__ = ["MAX_SCORE", "BasePolicy", "Placement", "Scheduler", "SchedulerPolicy"]

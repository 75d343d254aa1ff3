"""Re-fit a saved calibration with pauses of the etcd model's CPU pool per MB written (the
experiment of docs/validation.md, "Twelfth session": "Tried offline and not kept: pauses of
the CPU pool per MB written").

Every put's value bytes count down a Poisson distance (``cpu_pause_per_s`` read as pauses
per MB); at zero the whole pool stops for an exponential pause (mean ``cpu_pause_ms``), as
a Go garbage-collector cycle every so many MB allocated would. Both are fitted with the
pool's spread (``POOL_SPREAD_KEYS`` + the two, starting at 1 per MB). The model is patched
at run time; nothing in the tree changes. Usage, from the repository root:

    python docs/experiments/pool_pauses_per_mb.py calibrate etcd \
        --from-report etcd-here-calibration/ --out etcd-gc.toml
"""

import importlib
import sys

import numpy as np

import tracesim.models.etcd as E
from tracesim.models.etcd import call_later

F = importlib.import_module("tracesim.calibrate.fit")  # the package re-exports fit()
F.POOL_SPREAD_KEYS = (*F.POOL_SPREAD_KEYS, "cpu_pause_per_s", "cpu_pause_ms")
F.STALL_START_PER_S = 1.0  # the pool's pauses start at 1 per MB

_init = E.EtcdModel.__init__
_propose = E.EtcdModel._propose


def init(self, env, p, *args, **kw):
    _init(self, env, p, *args, **kw)
    self._gc_on = self.cpu is not None and p.cpu_pause_per_s > 0 and p.cpu_pause_ms > 0
    if self._gc_on:
        self.cpu._pauses = None  # no pauses per second: per MB instead
        self._gc_rng = np.random.default_rng(4242)
        self._gc_mean_bytes = 1e6 / p.cpu_pause_per_s
        self._gc_next = self._gc_rng.exponential(self._gc_mean_bytes)
        self._gc_acc = 0.0


def propose(self, w):
    if self._gc_on:
        self._gc_acc += w.total_bytes
        while self._gc_acc >= self._gc_next:
            self._gc_acc -= self._gc_next
            self._gc_next = self._gc_rng.exponential(self._gc_mean_bytes)
            pool = self.cpu
            if not pool._paused:  # a pause in progress is not extended
                pool._advance()
                pool._paused = True
                pool._schedule()
                call_later(
                    self.env, self._gc_rng.exponential(self.p.cpu_pause_ms / 1e3), pool._resume
                )
    _propose(self, w)


E.EtcdModel.__init__ = init
E.EtcdModel._propose = propose

if __name__ == "__main__":
    from tracesim.cli import main

    main(sys.argv[1:])

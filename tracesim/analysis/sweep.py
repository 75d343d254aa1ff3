"""Sweeps: a grid of replays (cluster sizes x profiles x ``--set`` values x seeds), in parallel.

Each run scales the base trace to its node count (cached per ``(nodes, seed)``) and replays it
with :func:`tracesim.sim.engine.replay`. The same two task functions, :func:`prepare_trace` and
:func:`execute_run`, are submitted to local processes (``jobs``) or to a Dask cluster (an
existing one by address, or a ``distributed.LocalCluster``): one code path, two executors.

Layout of a sweep directory ``DIR``::

    DIR/sweep.json                  the sweep's spec (trace, grid, scheduler...)
    DIR/traces/n<N>-s<seed>/        scaled traces (complete ones hold a DONE marker)
    DIR/runs/<run-id>/              one replay's tables + summary.json + params.json + DONE
    DIR/runs/<run-id>/error.txt     a failed run (no DONE: a rerun retries it)
    DIR/sweep.parquet               one row per finished run, written at the end

Every run writes into a hidden temporary directory and renames it into place only when it is
complete (with its ``DONE`` marker), so an interrupted sweep leaves finished runs intact and
nothing half-written under a run id; running the same command again resumes, skipping every run
that has ``DONE``. With a remote Dask cluster, the trace and ``DIR`` must be visible at the same
paths on the workers (a shared filesystem), since workers read the trace and write the results.

``sweep.parquet`` holds the run parameters (``run_id``, ``nodes``, ``profile``, ``scheduler``,
``seed``, one column per ``--set`` key) and every scalar of ``summary.json`` flattened with
dots (``scheduling_latency_s.p99``, ``slo.slos.mutating.pass`` ...), except wall-clock figures
(``wall_time_s`` ...), so the same sweep gives the same table on any executor.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import os
import re
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import TracesimError

SWEEP_FILE = "sweep.json"
RUNS_DIR = "runs"
TRACES_DIR = "traces"
DONE = "DONE"
ERROR_FILE = "error.txt"
PARAMS_FILE = "params.json"
TABLE_FILE = "sweep.parquet"
#: summary.json keys left out of the combined table: wall-clock figures differ between
#: executors and machines; ``trace`` is a path inside DIR; failure messages are long text.
VOLATILE_KEYS = frozenset(
    {
        "wall_time_s",
        "sim_seconds_per_wall_second",
        "decisions_per_wall_second_in_scheduler",
        "load_wall_s",
        "trace",
        "top_failure_reasons",
    }
)
PARAM_COLUMNS = ("run_id", "nodes", "profile", "scheduler", "seed", "duration_limit_s")
#: How long ``Client(address)`` may take before an unreachable Dask scheduler is an error.
DASK_CONNECT_TIMEOUT_S = 4.0


# -- the grid ----------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


@dataclass(frozen=True)
class RunSpec:
    """One replay of a sweep: cluster size, seed, profile, ``--set`` pairs, scheduler."""

    nodes: int
    seed: int
    profile: str | None = None
    settings: tuple[tuple[str, str], ...] = ()
    scheduler: str = "kube-default"
    duration_limit_s: float | None = None

    @property
    def run_id(self) -> str:
        """A readable, stable directory name: size, seed, profile, settings and a short hash
        of all parameters (so two specs never share a name, however the slug is cut)."""
        canon = json.dumps(asdict(self), sort_keys=True, default=str)
        digest = hashlib.blake2b(canon.encode(), digest_size=4).hexdigest()
        parts = [f"n{self.nodes}", f"s{self.seed}"]
        if self.profile:
            parts.append(Path(self.profile).stem)
        parts += [f"{k}={v}" for k, v in self.settings]
        return f"{_slug('-'.join(parts))[:100]}-{digest}"

    @property
    def trace_key(self) -> str:
        """Name of the scaled trace this run replays (shared by runs of equal size and seed)."""
        return f"n{self.nodes}-s{self.seed}"

    def params(self) -> dict[str, Any]:
        """The run's parameters as table columns (``--set`` values parsed to numbers)."""
        from ..sim.engine import parse_value

        out: dict[str, Any] = {
            "run_id": self.run_id,
            "nodes": self.nodes,
            "profile": self.profile,
            "scheduler": self.scheduler,
            "seed": self.seed,
            "duration_limit_s": self.duration_limit_s,
        }
        for key, value in self.settings:
            out[key] = parse_value(value)
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (``params.json``)."""
        d = asdict(self)
        d["settings"] = [list(p) for p in self.settings]
        d["run_id"] = self.run_id
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_json`."""
        return cls(
            nodes=int(d["nodes"]),
            seed=int(d["seed"]),
            profile=d.get("profile"),
            settings=tuple((str(k), str(v)) for k, v in d.get("settings", ())),
            scheduler=d.get("scheduler", "kube-default"),
            duration_limit_s=d.get("duration_limit_s"),
        )


@dataclass
class SweepSpec:
    """The grid: every combination of ``nodes`` x ``profiles`` x ``settings`` values x
    ``seeds``. ``settings`` maps a ``--set`` key to its list of values (one value = fixed).
    ``profiles = [None]`` replays with replay's default parameters."""

    trace: str
    nodes: list[int]
    profiles: list[str | None] = field(default_factory=lambda: [None])
    settings: dict[str, list[str]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    scheduler: str = "kube-default"
    duration_limit_s: float | None = None

    def runs(self) -> list[RunSpec]:
        """All runs, in grid order (nodes, profile, settings, seed)."""
        keys = list(self.settings)
        combos = list(itertools.product(*(self.settings[k] for k in keys)))
        out = []
        for nodes, profile, combo, seed in itertools.product(
            self.nodes, self.profiles, combos, self.seeds
        ):
            out.append(
                RunSpec(
                    nodes=int(nodes),
                    seed=int(seed),
                    profile=profile,
                    settings=tuple(zip(keys, (str(v) for v in combo), strict=True)),
                    scheduler=self.scheduler,
                    duration_limit_s=self.duration_limit_s,
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (``sweep.json``)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SweepSpec:
        """Inverse of :meth:`to_json`."""
        return cls(
            trace=str(d["trace"]),
            nodes=[int(n) for n in d["nodes"]],
            profiles=list(d.get("profiles") or [None]),
            settings={str(k): [str(v) for v in vs] for k, vs in (d.get("settings") or {}).items()},
            seeds=[int(s) for s in d.get("seeds") or [0]],
            scheduler=d.get("scheduler", "kube-default"),
            duration_limit_s=d.get("duration_limit_s"),
        )


def parse_int_list(text: str, option: str) -> list[int]:
    """``"1000,2000,5k"`` -> ``[1000, 2000, 5000]`` (``k`` = thousand); a one-line error if not."""
    out = []
    for part in text.split(","):
        p = part.strip().lower().replace("_", "")
        mult = 1000 if p.endswith("k") else 1
        p = p.removesuffix("k")
        try:
            value = float(p) * mult
        except ValueError:
            raise TracesimError(
                f"{option} {text!r}: write whole numbers separated by commas, e.g. 1000,2000,5k"
            ) from None
        if value != int(value) or value < (1 if option == "--nodes" else 0):
            raise TracesimError(f"{option} {text!r}: {part.strip()!r} is not a valid whole number")
        out.append(int(value))
    if len(set(out)) != len(out):
        raise TracesimError(f"{option} {text!r}: a value is repeated")
    return out


def parse_grid_settings(pairs: Iterable[str]) -> dict[str, list[str]]:
    """``["etcd.fsync_ms=1,2,10", "cycle_time_s=0"]`` -> ``{key: [values]}``."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(vals):
            raise TracesimError(
                f"--set {pair!r}: write KEY=VALUE or KEY=V1,V2,..., e.g. --set etcd.fsync_ms=1,10"
            )
        if key in out:
            raise TracesimError(f"--set {key}: given twice; list all its values in one --set")
        out[key] = vals
    return out


# -- checks before anything runs ---------------------------------------------------------------
def replay_supports_profiles() -> bool:
    """True when :func:`tracesim.sim.engine.replay` takes a ``profile`` argument."""
    from ..sim.engine import replay

    return "profile" in inspect.signature(replay).parameters


def _is_param_key(key: str) -> bool:
    """True for a control-plane parameter (``etcd.fsync_ms``), not an engine/policy key."""
    import dataclasses

    from ..models.params import SECTIONS

    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        return False
    return parts[1] in {f.name for f in dataclasses.fields(SECTIONS[parts[0]])}


def validate(spec: SweepSpec) -> None:
    """Raise :class:`TracesimError` for anything that would make every run fail: a path that
    is not a trace, bad sizes or seeds, an unknown profile, ``--set`` key or value (each value
    checked with every profile, as the replay itself would check it)."""
    from ..models.params import load_profile
    from ..sim import engine
    from ..trace.reader import open_trace

    open_trace(spec.trace)
    if not spec.nodes:
        raise TracesimError("--nodes: give at least one cluster size, e.g. --nodes 1000,2000")
    if any(n < 1 for n in spec.nodes):
        raise TracesimError("--nodes: every size must be at least 1")
    if spec.duration_limit_s is not None and not spec.duration_limit_s > 0:
        raise TracesimError("--duration-limit must be positive, e.g. 30m")
    profiles = [p for p in spec.profiles if p is not None]
    params_keys = [k for k in spec.settings if _is_param_key(k)]
    if (profiles or params_keys) and not replay_supports_profiles():
        what = "--profile" if profiles else f"--set {params_keys[0]}"
        raise TracesimError(
            f"{what}: this tracesim's replay has no control-plane models yet; "
            "sweep engine or scheduler settings only"
        )
    split_profile = getattr(engine, "split_profile_settings", None)
    for profile in spec.profiles:
        if profile is not None:
            load_profile(profile)
        for key, values in spec.settings.items():
            for v in values:
                rest, overrides = (
                    split_profile({key: v}, profile) if split_profile else ({key: v}, [])
                )
                if overrides:
                    load_profile(str(profile), overrides)
                if rest:
                    engine.split_settings(spec.scheduler, rest)


# -- the task functions (run in worker processes) -----------------------------------------------
def _base_nodes(trace: str) -> int | None:
    from ..trace.reader import open_trace

    nodes = (open_trace(trace).manifest.get("cluster") or {}).get("nodes")
    return int(nodes) if isinstance(nodes, int | float) else None


def scale_trace(base: str, nodes: int, seed: int, out: str) -> None:
    """Write ``base`` scaled to ``nodes`` nodes into ``out``.

    Uses :func:`tracesim.trace.transform.scale` when this tracesim has it; otherwise a
    synthetic base trace is generated again with ``nodes`` nodes from its manifest's config
    (``tracesim synth --nodes N``), and any other trace is an error.
    """
    try:
        from ..trace.transform import scale
    except ImportError:
        scale = None
    if scale is not None:
        scale(base, nodes, out, seed=seed)
        return
    from ..sources.synth import SynthConfig, synthesize
    from ..trace.reader import open_trace

    trace = open_trace(base)
    config = (trace.manifest.get("source") or {}).get("config")
    if trace.source_kind != "synthetic" or not isinstance(config, dict):
        raise TracesimError(
            f"{base}: scaling a {trace.source_kind} trace needs `tracesim scale`, which this "
            "tracesim lacks; sweep a synthetic trace instead"
        )
    known = {f for f in SynthConfig.__dataclass_fields__}
    cfg = {k: v for k, v in config.items() if k in known}
    cfg["resources"] = tuple(cfg.get("resources") or SynthConfig.resources)
    cfg.update(nodes=nodes, seed=seed)
    synthesize(SynthConfig(**cfg), out)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")


def _publish(tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` directory to ``final`` (replacing a failed attempt)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def prepare_trace(base: str, nodes: int, seed: int, traces_dir: str) -> dict[str, Any]:
    """Task: make sure the scaled trace for ``(nodes, seed)`` exists; returns ``{"path"}`` or
    ``{"error"}`` (one line). A trace whose size is already ``nodes`` is used as it is."""
    if _base_nodes(base) == nodes:
        return {"path": base}
    final = Path(traces_dir) / f"n{nodes}-s{seed}"
    if (final / DONE).is_file():
        return {"path": str(final)}
    tmp = _tmp_name(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        scale_trace(base, nodes, seed, str(tmp))
        (tmp / DONE).write_text("")
        _publish(tmp, final)
    except TracesimError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"error": f"scaling to {nodes} nodes: {exc}"}
    except Exception as exc:  # a bug: keep the run going, report it with its type
        shutil.rmtree(tmp, ignore_errors=True)
        return {"error": f"scaling to {nodes} nodes: {type(exc).__name__}: {exc}"}
    return {"path": str(final)}


def _call_replay(trace: str, run: RunSpec) -> Any:
    from ..sim.engine import replay

    kwargs: dict[str, Any] = {
        "seed": run.seed,
        "settings": dict(run.settings),
        "window": (0.0, run.duration_limit_s),
    }
    if run.profile is not None:
        kwargs["profile"] = run.profile
    return replay(trace, run.scheduler, **kwargs)


def execute_run(run: RunSpec, trace: str, runs_dir: str) -> dict[str, Any]:
    """Task: replay ``trace`` for ``run`` and store the results in ``runs_dir/<run-id>/``.

    Returns ``{"run_id", "wall_s"}``, plus ``"error"`` (one line) when the run failed; a
    failed run leaves ``error.txt`` (with the traceback of an unexpected error) and no
    ``DONE``, so a rerun retries it.
    """
    final = Path(runs_dir) / run.run_id
    tmp = _tmp_name(final)
    t0 = time.perf_counter()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        result = _call_replay(trace, run)
        result.write(tmp)
        (tmp / PARAMS_FILE).write_text(json.dumps(run.to_json(), indent=2) + "\n")
        wall_s = time.perf_counter() - t0
        (tmp / DONE).write_text(json.dumps({"wall_s": round(wall_s, 3)}) + "\n")
        _publish(tmp, final)
        return {"run_id": run.run_id, "wall_s": wall_s}
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, TracesimError):
            message, detail = str(exc), str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
            detail = traceback.format_exc()
        record_failure(Path(runs_dir), run, message, detail)
        return {"run_id": run.run_id, "wall_s": time.perf_counter() - t0, "error": message}


def record_failure(runs_dir: Path, run: RunSpec, message: str, detail: str | None = None) -> None:
    """Leave ``runs_dir/<run-id>/error.txt`` (first line: the message) and ``params.json``."""
    d = runs_dir / run.run_id
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / PARAMS_FILE).write_text(json.dumps(run.to_json(), indent=2) + "\n")
    text = message if detail in (None, message) else f"{message}\n\n{detail}"
    (d / ERROR_FILE).write_text(text.rstrip() + "\n")


# -- executors ----------------------------------------------------------------------------------
class _InlineExecutor:
    """``--jobs 1``: tasks run in this process, one at a time, when waited for (so an
    interruption stops the sweep between two runs, as with a pool)."""

    def __init__(self) -> None:
        self.pending: dict[Future, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        fut: Future = Future()
        self.pending[fut] = (fn, args)
        return fut

    def run_one(self, futures: list[Future]) -> set[Future]:
        done = {f for f in futures if f.done()}
        if done:
            return done
        fut = futures[0]
        fn, args = self.pending.pop(fut)
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return {fut}

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.pending.clear()


class Backend:
    """Where tasks run: ``submit(fn, *args)`` -> future; ``wait_any`` -> the done ones."""

    name = "local"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        raise NotImplementedError


class LocalBackend(Backend):
    """``jobs`` worker processes (forkserver: no threads of this process are inherited), or
    this process alone for ``jobs=1``."""

    def __init__(self, jobs: int = 1) -> None:
        import multiprocessing

        self.name = f"{jobs} local process{'es' if jobs > 1 else ''}"
        if jobs > 1:
            ctx = multiprocessing.get_context("forkserver")
            self.pool: Any = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
        else:
            self.pool = _InlineExecutor()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def wait_any(self, futures: Iterable[Future]) -> set[Future]:
        if isinstance(self.pool, _InlineExecutor):
            return self.pool.run_one(list(futures))
        return futures_wait(list(futures), return_when=FIRST_COMPLETED).done

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskBackend(Backend):
    """A Dask cluster: ``address`` of a running scheduler (``tcp://host:8786``), or ``local``
    for a :class:`distributed.LocalCluster` of ``jobs`` single-threaded worker processes."""

    def __init__(self, address: str, jobs: int = 2) -> None:
        try:
            import distributed
        except ImportError:
            raise TracesimError(
                "--dask needs the dask distributed package: pip install 'dask[distributed]'"
            ) from None
        import logging

        self.cluster = None
        if address == "local":
            self.cluster = distributed.LocalCluster(
                n_workers=max(jobs, 1),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = distributed.Client(self.cluster)
            self.name = f"local Dask cluster ({max(jobs, 1)} workers)"
            return
        if not re.match(r"^(tcp|tls|ws|wss)://[^\s/]+:\d+/?$", address):
            raise TracesimError(
                f"--dask {address!r}: give a scheduler address like tcp://host:8786, or 'local'"
            )
        # distributed logs every failed connection attempt; the user gets one line instead.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        problem = _probe_scheduler(address, DASK_CONNECT_TIMEOUT_S)
        if problem is not None:
            raise TracesimError(
                f"--dask {address}: no Dask scheduler there ({problem}); check the address "
                "or drop --dask to run locally"
            )
        self.client = distributed.Client(
            address, timeout=f"{DASK_CONNECT_TIMEOUT_S}s", set_as_default=False
        )
        self.name = f"Dask cluster at {address}"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        import distributed

        return set(distributed.wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _probe_scheduler(address: str, timeout_s: float) -> str | None:
    """None if a Dask scheduler answers at ``address`` within ``timeout_s``, else why not.

    Probed on a private event loop before any ``Client`` exists: a Client whose connection
    failed lingers and blocks the interpreter's exit for seconds while it closes.
    """
    import asyncio

    from distributed.core import rpc

    async def identity() -> Any:
        r = rpc(address, timeout=timeout_s)
        try:
            return await asyncio.wait_for(r.identity(), timeout_s)
        finally:
            await r.close_rpc()

    try:
        info = asyncio.run(identity())
    except (OSError, TimeoutError) as exc:  # refused, unreachable, unknown host, timed out
        text = str(exc).splitlines()[0] if str(exc) else f"no answer within {timeout_s:g} s"
        return text[:120]
    except Exception:  # garbage back: something that does not speak the Dask protocol
        return "the service there does not speak the Dask protocol"
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        return "the service there is not a Dask scheduler"
    return None


def make_backend(jobs: int = 1, dask: str | None = None) -> Backend:
    """The executor for ``--jobs N`` / ``--dask ADDRESS|local``."""
    if jobs < 1:
        raise TracesimError("--jobs must be at least 1")
    if dask:
        return DaskBackend(dask, jobs)
    return LocalBackend(jobs)


# -- state of a sweep directory ----------------------------------------------------------------
@dataclass
class SweepState:
    """What a sweep directory holds: finished, failed and missing runs of its spec."""

    out: Path
    spec: SweepSpec
    done: list[RunSpec]
    failed: dict[str, str]  # run id -> one-line error
    missing: list[RunSpec]  # neither done nor failed (never ran, or interrupted)

    @property
    def complete(self) -> bool:
        """True when every run of the grid has finished."""
        return not self.failed and not self.missing

    def describe(self) -> str:
        """One or two plain sentences: how many runs are done, and what is missing."""
        total = len(self.done) + len(self.failed) + len(self.missing)
        text = f"{len(self.done)} of {total} runs done"
        if self.complete:
            return text + "."
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.missing:
            sizes = sorted({r.nodes for r in self.missing})
            parts.append(
                f"{len(self.missing)} missing (sizes {', '.join(f'{n:,}' for n in sizes)})"
            )
        return (
            f"{text}; {' and '.join(parts)}. Rerun the same `tracesim sweep` command to finish it."
        )


def _run_done(runs_dir: Path, run: RunSpec) -> bool:
    return (runs_dir / run.run_id / DONE).is_file()


def _first_line(path: Path) -> str:
    text = path.read_text(errors="replace").strip()
    return text.splitlines()[0] if text else "failed"


def load_state(out: str | Path) -> SweepState:
    """The state of the sweep directory ``out``; a :class:`TracesimError` if it is not one."""
    out = Path(out)
    path = out / SWEEP_FILE
    if not path.is_file():
        raise TracesimError(f"{out}: not a sweep directory (no {SWEEP_FILE})")
    try:
        spec = SweepSpec.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise TracesimError(
            f"{path}: unreadable ({exc}); rerun the sweep into a new --out"
        ) from None
    runs_dir = out / RUNS_DIR
    done, failed, missing = [], {}, []
    for run in spec.runs():
        d = runs_dir / run.run_id
        if (d / DONE).is_file():
            done.append(run)
        elif (d / ERROR_FILE).is_file():
            failed[run.run_id] = _first_line(d / ERROR_FILE)
        else:
            missing.append(run)
    return SweepState(out, spec, done, failed, missing)


# -- the combined table ------------------------------------------------------------------------
def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": scalar}``; lists become JSON text; ``VOLATILE_KEYS`` at
    the top level are dropped."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if not prefix and key in VOLATILE_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, sort_keys=True, default=str)
        else:
            out[name] = value
    return out


def run_row(run_dir: Path) -> dict[str, Any]:
    """One table row for a finished run: its parameters, then its flattened summary."""
    run = RunSpec.from_json(json.loads((run_dir / PARAMS_FILE).read_text()))
    summary = json.loads((run_dir / "summary.json").read_text())
    row = run.params()
    for k, v in flatten(summary).items():
        row.setdefault(k, v)
    return row


def _uniform_column(col: pd.Series) -> pd.Series:
    """A column pyarrow can store: mixed-type objects become text (nulls kept)."""
    if col.dtype != object:
        return col
    values = [v for v in col if v is not None and not (isinstance(v, float) and math.isnan(v))]
    kinds = {type(v) for v in values}
    if kinds <= {bool} or kinds <= {str} or kinds <= {int, float}:
        return col
    return col.map(lambda v: None if v is None else str(v))


def build_table(out: str | Path, runs: Iterable[RunSpec]) -> pd.DataFrame:
    """The combined table of the finished ``runs`` (in the given order) under ``out``:
    parameter columns first, then one column per ``--set`` key, then the summary's keys."""
    runs = list(runs)
    runs_dir = Path(out) / RUNS_DIR
    rows = [run_row(runs_dir / r.run_id) for r in runs if _run_done(runs_dir, r)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = [c for c in PARAM_COLUMNS if c in df.columns]
    settings = list(dict.fromkeys(k for r in runs for k, _ in r.settings if k in df.columns))
    rest = sorted(c for c in df.columns if c not in first and c not in settings)
    df = df[first + settings + rest]
    return df.apply(_uniform_column)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as Parquet without pandas metadata (stable bytes for equal tables)."""
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")
    return Path(path)


def load_table(out: str | Path) -> pd.DataFrame:
    """``sweep.parquet`` of a sweep directory, or the table built from its finished runs when
    the sweep has not written it (interrupted)."""
    out = Path(out)
    if (out / TABLE_FILE).is_file():
        return pd.read_parquet(out / TABLE_FILE)
    state = load_state(out)
    return build_table(out, state.done)


# -- running a sweep ---------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What :func:`run_sweep` did."""

    out: Path
    table: pd.DataFrame
    total: int
    skipped: int  # already done before this call
    ran: int
    failed: dict[str, str]
    backend: str
    wall_s: float


Progress = Callable[[int, int, str], None]


def _check_out(spec: SweepSpec, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TracesimError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / SWEEP_FILE).is_file():
        raise TracesimError(f"{out}: exists and is not a sweep directory; choose another --out")
    if (out / SWEEP_FILE).is_file():
        old = load_state(out).spec
        if Path(old.trace).resolve() != Path(spec.trace).resolve():
            raise TracesimError(
                f"{out}: holds a sweep of {old.trace}, not {spec.trace}; choose another --out"
            )


def _clean_tmp(out: Path) -> None:
    """Remove temporary directories left by an interrupted sweep (never published)."""
    for sub in (RUNS_DIR, TRACES_DIR):
        d = out / sub
        if d.is_dir():
            for p in d.glob(".*.tmp-*"):
                shutil.rmtree(p, ignore_errors=True)


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    jobs: int = 1,
    dask: str | None = None,
    backend: Backend | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Run every run of ``spec`` not yet done in ``out``; write ``sweep.parquet`` at the end.

    ``jobs`` local processes, or ``dask`` (an address or ``"local"``), or a ready ``backend``.
    ``progress(done, total, run_id)`` is called once at the start (``run_id = ""``) and after
    each run, counting only the runs this call executes. Failed runs do not stop the others;
    they are listed in the result (and rerun by the next call). Returns a :class:`SweepResult`.
    """
    wall0 = time.perf_counter()
    spec = SweepSpec.from_json({**spec.to_json(), "trace": str(Path(spec.trace).resolve())})
    out = Path(out)
    validate(spec)
    _check_out(spec, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SWEEP_FILE).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    _clean_tmp(out)
    runs_dir, traces_dir = out / RUNS_DIR, out / TRACES_DIR
    runs_dir.mkdir(exist_ok=True)
    runs = spec.runs()
    todo = [r for r in runs if not _run_done(runs_dir, r)]
    failed: dict[str, str] = {}
    if progress is not None:
        progress(0, len(todo), "")
    if todo:
        own = backend is None
        backend = backend or make_backend(jobs, dask)
        try:
            failed = _drive(backend, spec, todo, runs_dir, traces_dir, progress)
        except BaseException:
            backend.close(cancel=True)
            raise
        if own:
            backend.close()
    table = build_table(out, runs)
    if len(table) and not failed:
        write_table(table, out / TABLE_FILE)
    elif (out / TABLE_FILE).exists():
        (out / TABLE_FILE).unlink()  # stale: a table is only written for a complete sweep
    return SweepResult(
        out=out,
        table=table,
        total=len(runs),
        skipped=len(runs) - len(todo),
        ran=len(todo),
        failed=failed,
        backend=backend.name if backend is not None else "none (all runs were done)",
        wall_s=time.perf_counter() - wall0,
    )


def _drive(
    backend: Backend,
    spec: SweepSpec,
    todo: list[RunSpec],
    runs_dir: Path,
    traces_dir: Path,
    progress: Progress | None,
) -> dict[str, str]:
    """Submit the trace preparations, then each run as soon as its trace is ready."""
    waiting: dict[tuple[int, int], list[RunSpec]] = {}
    for r in todo:
        waiting.setdefault((r.nodes, r.seed), []).append(r)
    futures: dict[Any, tuple[str, Any]] = {}
    for key in waiting:
        fut = backend.submit(prepare_trace, spec.trace, key[0], key[1], str(traces_dir))
        futures[fut] = ("trace", key)
    failed: dict[str, str] = {}
    done = 0
    while futures:
        for fut in backend.wait_any(futures):
            kind, what = futures.pop(fut)
            result = fut.result()
            if kind == "trace":
                runs = waiting.pop(what)
                if "error" in result:
                    for r in runs:
                        record_failure(runs_dir, r, result["error"])
                        failed[r.run_id] = result["error"]
                        done += 1
                        if progress is not None:
                            progress(done, len(todo), r.run_id)
                    continue
                for r in runs:
                    futures[backend.submit(execute_run, r, result["path"], str(runs_dir))] = (
                        "run",
                        r,
                    )
            else:
                done += 1
                if "error" in result:
                    failed[what.run_id] = result["error"]
                if progress is not None:
                    progress(done, len(todo), what.run_id)
    return failed

"""Writes the analysis notebooks from the cells below (committed without outputs).

Run ``python notebooks/make_notebooks.py`` after editing; ``tests/test_notebooks.py`` executes
every notebook top to bottom on small inputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

EXPLORE = [
    new_markdown_cell(
        "# Explore a trace\n\n"
        "Rates by kind, object sizes and pod lifecycles of a tracesim trace, with the same library "
        "calls the CLI makes (`tracesim info`). Set `TRACESIM_TRACE` to look at your own trace; "
        "the default is the bundled sample (200 synthetic nodes, 30 minutes)."
    ),
    new_code_cell(
        "import os\n"
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n\n"
        "import tracesim\n"
        "from tracesim.trace.info import trace_info\n\n"
        'TRACE = Path(os.environ.get("TRACESIM_TRACE", "../traces/sample"))\n'
        "trace = tracesim.open_trace(TRACE)\n"
        "trace"
    ),
    new_markdown_cell("## What is in it"),
    new_code_cell(
        "info = trace_info(trace, top=5)\n"
        "kinds = pd.DataFrame(info['kinds']).T[['rows', 'events_per_s', 'objects', 'bytes']]\n"
        "print(f\"{info['span']['duration_s']:.0f} s, {info['events']['rows']:,} events, \"\n"
        "      f\"{info['nodes']} nodes, {info['pods']} pods\")\n"
        "kinds"
    ),
    new_markdown_cell(
        "## Event rates over time\n\n"
        "Watch events per second by kind, one-minute bins (the initial LIST left out)."
    ),
    new_code_cell(
        "events = trace.events(columns=['ts', 'kind', 'event_type', 'size_bytes'])\n"
        "watched = events[events['event_type'] != 'LISTED']\n"
        "rates = (watched.groupby([pd.Grouper(key='ts', freq='1min'), 'kind'], observed=True)\n"
        "         .size().unstack(fill_value=0) / 60)\n"
        "ax = rates.plot(figsize=(10, 4), drawstyle='steps-post')\n"
        "ax.set_ylabel('events per second')\n"
        "rates.describe().T[['mean', 'max']]"
    ),
    new_markdown_cell(
        "## Object sizes\n\n"
        "What the API server and etcd pay for each write; Node objects dominate when kubelets "
        "send full NodeStatus heartbeats (KEP-589)."
    ),
    new_code_cell(
        "sizes = events.groupby('kind', observed=True)['size_bytes']\n"
        "summary = sizes.describe(percentiles=[0.5, 0.99])\n"
        "summary = summary[['count', 'mean', '50%', '99%', 'max']]\n"
        "events.boxplot(column='size_bytes', by='kind', figsize=(8, 4), showfliers=False)\n"
        "plt.yscale('log')\n"
        "summary"
    ),
    new_markdown_cell(
        "## Pod lifecycles\n\n"
        "Per pod: creation, binding (first update with a node), running, deletion; the time "
        "from creation to binding is the scheduling latency the recorded scheduler achieved."
    ),
    new_code_cell(
        "columns = ['ts', 'seq', 'event_type', 'uid', 'owner_kind', 'node_name', 'phase']\n"
        "pods = trace.events(kinds=['Pod'], columns=columns)\n"
        "pods = pods.sort_values('seq')\n"
        "created = pods[pods['event_type'] == 'ADDED'].groupby('uid')['ts'].first()\n"
        "bound = pods[pods['node_name'].notna()].groupby('uid')['ts'].first()\n"
        "running = pods[pods['phase'] == 'Running'].groupby('uid')['ts'].first()\n"
        "deleted = pods[pods['event_type'] == 'DELETED'].groupby('uid')['ts'].first()\n"
        "owner = pods.groupby('uid')['owner_kind'].first()\n"
        "life = pd.DataFrame({'owner': owner, 'created': created, 'bound': bound,\n"
        "                     'running': running, 'deleted': deleted}).dropna(subset=['created'])\n"
        "life['schedule_s'] = (life['bound'] - life['created']).dt.total_seconds()\n"
        "life['start_s'] = (life['running'] - life['bound']).dt.total_seconds()\n"
        "life['lifetime_s'] = (life['deleted'] - life['created']).dt.total_seconds()\n"
        "life.groupby('owner', observed=True)[['schedule_s', 'start_s', 'lifetime_s']].median()"
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))\n"
        "panels = [('schedule_s', 'creation to binding (s)'), ('lifetime_s', 'lifetime (s)')]\n"
        "for ax, (col, label) in zip(axes, panels, strict=True):\n"
        "    values = life[col].dropna().sort_values()\n"
        "    ax.plot(values.to_numpy(), (pd.RangeIndex(len(values)) + 1) / max(len(values), 1))\n"
        "    ax.set_xscale('log')\n"
        "    ax.set_xlabel(label)\n"
        "    ax.set_ylabel('fraction of pods')\n"
        "assert len(life) > 0"
    ),
]

GPU = [
    new_markdown_cell(
        "# GPU fragmentation: the FGD experiment\n\n"
        "Weng et al., *Beware of Fragmentation* (USENIX ATC '23), on Alibaba's openb trace: pods "
        "are submitted one by one until the GPU requests reach 130% of capacity, and each "
        "placement policy leaves some GPUs unallocatable. This runs the same library calls as "
        "`tracesim experiment fgd`. `TRACESIM_NOTEBOOK_QUICK=1` (used in CI) runs one seed; the "
        "paper's protocol averages seeds 42-51."
    ),
    new_code_cell(
        "import os\n\n"
        "from tracesim.analysis.fgd import run_experiment\n"
        "from tracesim.models.registry import scheduler_names\n"
        "from tracesim.sources.openb import default_data_dir\n\n"
        "QUICK = os.environ.get('TRACESIM_NOTEBOOK_QUICK') == '1'\n"
        "DATA = os.environ.get('TRACESIM_OPENB_DIR', str(default_data_dir()))\n"
        "SEEDS = [42] if QUICK else list(range(42, 52))\n"
        "POLICIES = ['random', 'dotprod', 'gpuclustering', 'gpupacking', 'bestfit', 'fgd']\n"
        "assert set(POLICIES) <= set(scheduler_names())\n"
        "result = run_experiment(['default'], POLICIES, SEEDS, data_dir=DATA, jobs=2)\n"
        "result.summary.sort_values('unalloc_100_mean')"
    ),
    new_markdown_cell(
        "## Allocation as GPU requests arrive\n\n"
        "x: requested GPU so far (% of capacity); y: GPU allocated (% of capacity). The gap to "
        "the diagonal past 100% is the fragmentation each policy causes."
    ),
    new_code_cell(
        "curves = result.curves.groupby(['policy', 'x'])['alloc_pct'].mean().unstack(0)\n"
        "ax = curves.plot(figsize=(8, 4.5))\n"
        "ax.plot([0, 100], [0, 100], ':', color='grey')\n"
        "ax.set_xlabel('arrived GPU requests, % of capacity')\n"
        "ax.set_ylabel('GPU allocation, %')\n"
        "best = result.summary.sort_values('unalloc_100_mean').iloc[0]['policy']\n"
        "print('fewest unallocated GPUs at x=100:', best)"
    ),
]


BOTTLENECK = [
    new_markdown_cell(
        "# Find the bottleneck\n\n"
        "A sweep of a synthetic trace from small to large clusters under two control-plane "
        "profiles (`2019-era`: NodeStatus heartbeats, array freelist, LIST from etcd, 2 GiB "
        "quota; `current`: Leases, hashmap freelist, consistent reads from cache, APF), then the "
        "same analysis as `tracesim bottlenecks`: which component saturates first, at what size, "
        "which SLO breaks there and what loads the component. `TRACESIM_NOTEBOOK_QUICK=1` (used "
        "in CI) sweeps 50-200 nodes; the default sweeps 1,000-20,000 nodes (tens of minutes)."
    ),
    new_code_cell(
        "import os\n"
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n\n"
        "from tracesim.analysis import bottleneck as bn\n"
        "from tracesim.analysis.sweep import SweepSpec, run_sweep\n"
        "from tracesim.sources.synth import SynthConfig, synthesize\n\n"
        "QUICK = os.environ.get('TRACESIM_NOTEBOOK_QUICK') == '1'\n"
        "SIZES = [50, 100, 200] if QUICK else [1000, 2000, 5000, 10000, 20000]\n"
        "PROFILES = ['2019-era', 'current']\n"
        "DURATION_S = 600.0  # ten simulated minutes: two 5-minute SLO windows\n"
        "JOBS = int(os.environ.get('TRACESIM_JOBS', '2'))\n"
        "WORK = Path(os.environ.get('TRACESIM_NOTEBOOK_OUT') or tempfile.mkdtemp(prefix='bn-'))\n"
        "print('sizes', SIZES, 'profiles', PROFILES, 'in', WORK)"
    ),
    new_markdown_cell(
        "## The sweep\n\n"
        "A base trace at the smallest size, scaled to each size by the sweep (`tracesim sweep`). "
        "Finished runs are kept: running the cell again resumes an interrupted sweep."
    ),
    new_code_cell(
        "base = WORK / 'trace'\n"
        "if not (base / 'manifest.json').exists():\n"
        "    synthesize(SynthConfig(nodes=SIZES[0], duration_s=DURATION_S, seed=1), base)\n"
        "spec = SweepSpec(trace=str(base), nodes=SIZES, profiles=PROFILES)\n"
        "result = run_sweep(spec, WORK / 'sweep', jobs=JOBS)\n"
        "print(f'{result.ran} runs in {result.wall_s:.0f} s ({result.skipped} already done)')"
    ),
    new_markdown_cell(
        "## The verdict\n\n"
        "Per profile: the first component to saturate (utilisation >= 0.9 for a minute, a queue "
        "growing without bound, or requests rejected because it is full) and what loads it; "
        "per SLO: the size at which it first breaks (the knee) and the component responsible."
    ),
    new_code_cell(
        "sweep = bn.analyze_sweep(WORK / 'sweep')\n"
        "for sentence in sweep.sentences:\n"
        "    print(sentence)\n"
        "tables = bn.sweep_tables(sweep)\n"
        "tables['SLO knees per variant']"
    ),
    new_code_cell("tables['Verdict per run']"),
    new_markdown_cell(
        "## Curves, SLO lines and knees\n\n"
        "Worst 99th percentile per SLO against cluster size, one line per profile; dashed: the "
        "SLO; X: the knee (where the curve crosses the SLO, or bends)."
    ),
    new_code_cell("fig = bn.plot_sweep(sweep)"),
    new_markdown_cell(
        "## The largest run of each profile, in detail\n\n"
        "Utilisation of each component over time, and the contributors to the load of the "
        "component responsible, by request category."
    ),
    new_code_cell(
        "largest = sweep.runs.sort_values('nodes').groupby('variant').tail(1)\n"
        "fig, axes = plt.subplots(1, len(largest), figsize=(7 * len(largest), 4), squeeze=False)\n"
        "for ax, (_, row) in zip(axes[0], largest.iterrows(), strict=True):\n"
        "    an = sweep.analyses[row['run_id']]\n"
        "    print(f\"{row['variant']} at {row['nodes']:,} nodes:\")\n"
        "    for sentence in an.sentences:\n"
        "        print('  ', sentence)\n"
        "    comp = pd.read_parquet(Path(an.path) / 'components.parquet')\n"
        "    comp['metric'] = comp['metric'].astype(str)\n"
        "    top = an.components.dropna(subset=['util_metric']).head(5)\n"
        "    for _, c in top.iterrows():\n"
        "        s = comp[comp['metric'] == c['util_metric']]\n"
        "        ax.plot(s['t_s'] / 60, s['value'], label=c['name'])\n"
        "    ax.axhline(bn.UTIL_THRESHOLD, color='black', linestyle='--', linewidth=1)\n"
        "    ax.set(title=f\"{row['variant']}, {row['nodes']:,} nodes\", xlabel='minutes',\n"
        "           ylabel='utilisation')\n"
        "    ax.legend(fontsize=7)"
    ),
    new_code_cell(
        "contrib = {}\n"
        "for _, row in largest.iterrows():\n"
        "    an = sweep.analyses[row['run_id']]\n"
        "    etcd = bn.contributors(an.categories, 'etcd.leader')\n"
        "    contrib[row['variant']] = etcd.set_index('category')['bytes_share'].round(3)\n"
        "mix = pd.DataFrame(contrib).fillna(0.0)\n"
        "print('share of etcd write bytes by category (largest run per profile)')\n"
        "assert mix.loc['NodeStatus', '2019-era'] > mix.loc['NodeStatus', 'current']\n"
        "mix"
    ),
]


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    stem = name.split("-", 1)[0]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb{stem}-{i:02d}"  # stable ids: regenerating changes nothing but edits
    path = HERE / name
    nbformat.write(nb, path)
    # The cells above are written for reading here; ruff gives them the project's style.
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=True)
    return path


if __name__ == "__main__":
    for name, cells in (
        ("01-explore-trace.ipynb", EXPLORE),
        ("02-find-the-bottleneck.ipynb", BOTTLENECK),
        ("03-gpu-fragmentation.ipynb", GPU),
    ):
        print(write(name, cells))

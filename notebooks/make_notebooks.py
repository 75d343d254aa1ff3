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


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = HERE / name
    nbformat.write(nb, path)
    # The cells above are written for reading here; ruff gives them the project's style.
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=True)
    return path


if __name__ == "__main__":
    for name, cells in (("01-explore-trace.ipynb", EXPLORE), ("03-gpu-fragmentation.ipynb", GPU)):
        print(write(name, cells))

"""``python -m bench.plot RESULTS.json OUTDIR``: one SVG bar chart per
scenario and metric of a ``python -m bench`` run, for docs/performance.md.

Each chart has a bar per peer at the median over the rounds, a thin line
across the range of the rounds, the value, and the ratio to the baseline the
tables use. The SVG is written by hand (no plotting library, no fonts to
embed, and the same input gives the same bytes), so the charts can be
committed and diffed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from .peers import SCENARIOS

#: Colours: our two backends stand out, the peers are grey-blue.
OURS = "#d9480f"
PEER = "#5c7cfa"
BASELINE = "#364fc7"
TEXT = "#212529"
MUTED = "#868e96"

ROW = 24          # pixels per bar
LABEL = 170       # the peers' names
CHART = 380       # the bars
VALUE = 150       # value and ratio
WIDTH = LABEL + CHART + VALUE
TOP = 60          # the title and two lines under it


@dataclass(frozen=True)
class Chart:
    """One metric of one scenario, the values of each peer across the rounds."""

    scenario: str
    key: str
    title: str
    higher_is_better: bool
    fmt: str
    values: dict[str, list[float]]
    baselines: dict[str, str]   # peer -> the peer its ratio is taken against

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.key}"


def metrics_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenarios' metrics: from the JSON when the run recorded them
    (``meta.scenarios``), else from this checkout's bench.peers."""
    recorded = results.get("meta", {}).get("scenarios")
    if recorded:
        return list(recorded)
    return [{"name": s.name, "kind": s.kind,
             "metrics": [{"key": m.key, "title": m.title, "higher_is_better": m.higher_is_better,
                          "fmt": m.fmt, "cpu": m.cpu} for m in s.metrics]}
            for s in SCENARIOS]


def charts(results: dict[str, Any]) -> list[Chart]:
    """A chart for every scenario and metric the run measured, peers in the
    run's order."""
    from .peers import PEERS  # the baselines the tables use

    baseline_of = {p.name: (p.baseline, p.es_baseline) for p in PEERS}
    out = []
    for scenario in metrics_of(results):
        runs = [r for r in results["runs"]
                if r["scenario"] == scenario["name"] and "error" not in r["result"]]
        for metric in scenario["metrics"]:
            values: dict[str, list[float]] = {}
            for run in runs:
                if metric["key"] in run["result"]:
                    values.setdefault(run["peer"], []).append(float(run["result"][metric["key"]]))
            if not values:
                continue
            baselines = {}
            for peer in values:
                ws, es = baseline_of.get(peer, ("websockets-asyncio", "sse-starlette"))
                wanted = [es] if scenario["kind"] == "es" else [ws, "websockets-asyncio"]
                baselines[peer] = next((b for b in wanted if b in values), "")
            title = metric["title"]
            if metric.get("cpu") and "CPU" not in title:
                title = f"{title} (server CPU)" if scenario["kind"] != "client" else \
                    f"{title} (client CPU)"
            out.append(Chart(scenario["name"], metric["key"], title,
                             metric["higher_is_better"], metric["fmt"], values, baselines))
    return out


#: Round axis maxima (times a power of ten) and how many gridlines divide them.
_AXES = ((1, 5), (1.5, 3), (2, 4), (2.5, 5), (3, 3), (4, 4), (5, 5), (6, 3), (8, 4), (10, 5))


def _axis(value: float) -> tuple[float, int]:
    """A round axis maximum at or above ``value``, and its number of divisions."""
    magnitude = 10.0 ** math.floor(math.log10(value)) if value > 0 else 1.0
    for step, divisions in _AXES:
        if step * magnitude >= value:
            return step * magnitude, divisions
    return 10 * magnitude, 5


def _ratio_note(chart: Chart) -> str:
    """Which peer the ratios in parentheses are taken against."""
    bases = [b for p, b in chart.baselines.items() if b and b != p]
    if not bases:
        return ""
    main = max(set(bases), key=bases.count)
    others = [f"{p} to {b}" for p, b in chart.baselines.items() if b and b not in (p, main)]
    return (f"in parentheses: the ratio to {main}"
            + (f" ({', '.join(others)})" if others else ""))


def svg(chart: Chart) -> str:
    """The chart as an SVG document."""
    peers = list(chart.values)
    height = TOP + ROW * len(peers) + 30
    top_value, divisions = _axis(max(max(v) for v in chart.values.values()))
    scale = CHART / top_value
    better = "higher is better" if chart.higher_is_better else "lower is better"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, '
        f'Segoe UI, Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(chart.title)}: {better}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="18" font-size="14" font-weight="600" fill="{TEXT}">'
        f"{escape(chart.title)}</text>",
        f'<text x="8" y="34" fill="{MUTED}">{escape(better)}; bar: the median of the '
        "rounds, line: their range</text>",
        f'<text x="8" y="49" fill="{MUTED}">{escape(_ratio_note(chart))}</text>',
    ]
    for tick in range(divisions + 1):
        x = LABEL + CHART * tick / divisions
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" '
                     f'y2="{TOP + ROW * len(peers)}" stroke="#e9ecef"/>')
        tick_label = escape(chart.fmt.format(top_value * tick / divisions))
        parts.append(f'<text x="{x:.1f}" y="{TOP + ROW * len(peers) + 14}" fill="{MUTED}" '
                     f'text-anchor="middle">{tick_label}</text>')
    for row, peer in enumerate(peers):
        values = chart.values[peer]
        median = statistics.median(values)
        y = TOP + row * ROW
        base = chart.baselines.get(peer, "")
        colour = OURS if peer.startswith("ours") else BASELINE if peer == base else PEER
        parts.append(f'<text x="{LABEL - 8}" y="{y + 16}" fill="{TEXT}" '
                     f'text-anchor="end">{escape(peer)}</text>')
        parts.append(f'<rect x="{LABEL}" y="{y + 5}" width="{max(median * scale, 1):.1f}" '
                     f'height="{ROW - 10}" fill="{colour}"/>')
        if len(values) > 1:
            low, high = min(values) * scale, max(values) * scale
            parts.append(f'<line x1="{LABEL + low:.1f}" y1="{y + ROW / 2}" '
                         f'x2="{LABEL + high:.1f}" y2="{y + ROW / 2}" stroke="{TEXT}" '
                         'stroke-width="1.5"/>')
        label = chart.fmt.format(median)
        base_values = chart.values.get(base)
        if base_values and base != peer:
            label += f" ({median / statistics.median(base_values):.2f})"
        parts.append(f'<text x="{LABEL + CHART + 6}" y="{y + 16}" fill="{TEXT}">'
                     f"{escape(label)}</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    parser.add_argument("results", type=Path, help="a JSON file written by python -m bench")
    parser.add_argument("outdir", type=Path, help="where the SVG files go")
    parser.add_argument("--scenario", help="comma-separated scenarios (default: all measured)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    wanted = set(args.scenario.split(",")) if args.scenario else None
    args.outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts(results):
        if wanted is None or chart.scenario in wanted:
            path = args.outdir / f"{chart.name}.svg"
            path.write_text(svg(chart))
            written.append(path.name)
    print(f"wrote {len(written)} charts to {args.outdir}: {', '.join(written)}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())

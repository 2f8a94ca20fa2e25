#!/usr/bin/python3
"""Draws benchmark results as SVG: latency distributions and throughput.

Input: any mix of
  - `amsg bench --json` output (one JSON object per line), and
  - the raw files of bench/compare_seed.sh and bench/compare_zmq.sh
    (lines `system=NAME config=LABEL <JSON objects or key=value pairs>`),
so the anchors (seed-tokio, raw ZeroMQ) appear beside amsg.

Output (in OUTDIR, default .):
  latency.svg     the latency distribution of every measurement that has one:
                  amsg's full CDF ("cdf" in its JSON), the anchors' percentiles as points
  throughput.svg  messages/s of every throughput measurement, by label

Usage: bench/plot.py [-o OUTDIR] FILE...   (Debian python3 + python3-matplotlib: the shebang is /usr/bin/python3)
"""
import argparse
import json
import re
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small files
matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=matplotlib.colormaps["tab20"].colors)
import matplotlib.pyplot as plt  # noqa: E402


def records(path):
    """Yields (label, dict) for every measurement in the file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"system=(\S+) config=(\S+)\s*(.*)", line)
            system, config, rest = (m.group(1), m.group(2), m.group(3)) if m else ("amsg", None, line)
            objects = re.findall(r"\{.*?\}(?=\s*\{|\s*$)", rest)
            if objects:
                for text in objects:
                    o = json.loads(text)
                    label = f"{system} {config or o.get('scenario')}"
                    if not config:
                        label += f" {o.get('transport', '')} N={o.get('concurrency')}"
                    yield label, o
            elif "=" in rest:
                o = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
                yield f"{system} {config}", o


def number(o, *keys):
    for k in keys:
        if k in o:
            try:
                return float(o[k])
            except ValueError:
                pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--outdir", default=".")
    ap.add_argument("--format", default="svg", choices=["svg", "png"])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    cdfs = defaultdict(list)  # label -> [[q, us], ...] per round
    points = defaultdict(list)  # label -> [(q, us)] (percentiles only)
    rates = defaultdict(list)  # label -> [msgs/s]
    for path in args.files:
        for label, o in records(path):
            if "cdf" in o:
                cdfs[label].append(o["cdf"])
            else:
                pct = [(0.5, number(o, "p50_us", "rtt_us_p50", "lat_us_p50")),
                       (0.99, number(o, "p99_us", "rtt_us_p99", "lat_us_p99")),
                       (0.999, number(o, "p999_us", "rtt_us_p999", "lat_us_p999"))]
                pct = [(q, v) for q, v in pct if v is not None]
                if pct:
                    points[label].append(pct)
            rate = number(o, "msgs_per_s", "requests_per_s")
            if rate:
                rates[label].append(rate)

    if not cdfs and not points and not rates:
        sys.exit("plot.py: no measurements in the input")

    # Latency by percentile (the distribution's tail stretched out: x is -log10(1 - q),
    # so 90 %, 99 %, 99.9 % are evenly spaced), the median over rounds of each quantile.
    import math

    def nines(q):
        return -math.log10(1 - min(q, 0.99999))

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, rounds in sorted(cdfs.items()):
        qs = [q for q, _ in rounds[0]]
        us = [statistics.median(r[i][1] for r in rounds) for i in range(len(qs))]
        ax.plot([nines(q) for q in qs], us, marker=".", label=label)
    for label, rounds in sorted(points.items()):
        qs = [q for q, _ in rounds[0]]
        us = [statistics.median(r[i][1] for r in rounds if i < len(r)) for i in range(len(qs))]
        ax.plot([nines(q) for q in qs], us, linestyle=":", marker="o", label=f"{label} (p50/p99/p99.9)")
    ticks = [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999]
    ax.set_xticks([nines(q) for q in ticks], [f"{q * 100:g} %" for q in ticks])
    ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (µs, log scale)")
    ax.set_title("Latency by percentile (medians over rounds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(f"{args.outdir}/latency.{args.format}")

    # Throughput: median over rounds, one bar per label.
    if rates:
        labels = sorted(rates)
        values = [statistics.median(rates[k]) / 1e6 for k in labels]
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(labels) + 1.5))
        ax.barh(labels, values)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
        ax.set_xlabel("million messages (or requests) per second, median over rounds")
        ax.set_title("Throughput")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        fig.savefig(f"{args.outdir}/throughput.{args.format}")
    written = ["latency"] + (["throughput"] if rates else [])
    print("plot.py: wrote " + " and ".join(f"{args.outdir}/{w}.{args.format}" for w in written))


if __name__ == "__main__":
    main()

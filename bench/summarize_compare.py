#!/usr/bin/env python3
"""Medians and ratios from bench/compare_seed.sh's raw lines (seed key=value, amsg JSON)."""
import sys

from medians import json_values, key_values, medians, split_line

KEYS = {  # our name -> (seed key, amsg key)
    "msgs_per_s": ("msgs_per_s", "msgs_per_s"),
    "p50_us": ("lat_us_p50", "p50_us"),
    "p99_us": ("lat_us_p99", "p99_us"),
    "p999_us": ("lat_us_p999", "p999_us"),
    "peak_rss_kb": ("peak_rss_kb", "peak_rss_kb"),
    "cpu_us_per_msg": ("cpu_us_per_msg", "cpu_us_per_msg"),
}


def parse(line):
    p = split_line(line)
    if not p:
        return None
    system, config, rest = p
    if system == "amsg":
        values = json_values(rest)
        values = {k: values[a] for k, (_, a) in KEYS.items() if a in values}
    else:
        kv = key_values(rest)
        if "roundtrips_per_s" in kv:
            kv["msgs_per_s"] = kv["roundtrips_per_s"]
        values = {k: float(kv[s]) for k, (s, _) in KEYS.items() if s in kv}
    return system, config, values


def main(path):
    med, n = medians(path, parse)
    print(f"medians of {n} interleaved rounds\n")
    print("| measurement | seed-tokio | amsg | ratio (amsg vs seed) |")
    print("|---|---|---|---|")

    def row(label, seed_cfg, amsg_cfg, key, better):
        s = med.get(("seed-tokio", seed_cfg), {}).get(key)
        a = med.get(("amsg", amsg_cfg), {}).get(key)
        if s is None or a is None:
            return
        ratio = a / s if better == "higher" else s / a
        fmt = (lambda x: f"{x/1e6:.2f} M/s") if key == "msgs_per_s" else (
            (lambda x: f"{x/1024:.1f} MB") if key == "peak_rss_kb" else (lambda x: f"{x:.2f} µs"))
        if better == "higher":
            word = "faster" if ratio >= 1 else "slower"
        else:
            word = "better" if ratio >= 1 else "worse"
        shown = ratio if ratio >= 1 else 1 / ratio
        print(f"| {label} | {fmt(s)} | {fmt(a)} | {shown:.2f}× {word} |")

    row("throughput N=4 (defaults: pool of 1 thread + producer thread)", "thr-n4", "thr-n4", "msgs_per_s", "higher")
    row("throughput N=64 (defaults: pool of 1 thread + producer thread)", "thr-n64", "thr-n64", "msgs_per_s", "higher")
    row("throughput N=4 (pool of 2 threads)", "thr-n4", "thr-n4-pool2", "msgs_per_s", "higher")
    row("throughput N=64 (pool of 2 threads)", "thr-n64", "thr-n64-pool2", "msgs_per_s", "higher")
    row("throughput N=4, one-at-a-time consumer (defaults)", "thr-n4", "thr-n4-single", "msgs_per_s", "higher")
    row("throughput N=64, one-at-a-time consumer (defaults)", "thr-n64", "thr-n64-single", "msgs_per_s", "higher")
    row("CPU per message N=4 (defaults)", "thr-n4", "thr-n4", "cpu_us_per_msg", "lower")
    row("CPU per message N=4 (pool 2)", "thr-n4", "thr-n4-pool2", "cpu_us_per_msg", "lower")
    row("peak RSS, 1 M run N=64 (pool 2)", "thr-n64", "thr-n64-pool2", "peak_rss_kb", "lower")
    for cfg in ("rate", "rate-spin50"):
        for key in ("p50_us", "p99_us", "p999_us"):
            row(f"50 k/s {key} ({cfg})", "rate", cfg, key, "lower")
    row("50 k/s CPU per message (rate)", "rate", "rate", "cpu_us_per_msg", "lower")
    row("50 k/s CPU per message (rate-spin50)", "rate", "rate-spin50", "cpu_us_per_msg", "lower")
    for cfg in ("pingpong", "pingpong-pool2", "pingpong-thread-spin50"):
        for key in ("p50_us", "p99_us"):
            row(f"ping-pong {key} ({cfg})", "pingpong", cfg, key, "lower")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/amsg-compare/raw.txt")

#!/usr/bin/env python3
"""Medians and ratios from bench/compare_ucx.sh's raw lines (ucx_am_pingpong and
zmq_bench key=value, amsg JSON)."""
import sys

from medians import json_values, key_values, medians, split_line


def parse(line):
    p = split_line(line)
    if not p:
        return None
    system, config, rest = p
    if system == "amsg":
        values = json_values(rest)
        return system, config, {k: values[k] for k in ("msgs_per_s", "p50_us", "p99_us", "mean_us") if k in values}
    kv = key_values(rest)
    out = {}
    if "rtt_us_p50" in kv:
        out["p50_us"] = float(kv["rtt_us_p50"])
        out["p99_us"] = float(kv["rtt_us_p99"])
        if "rtt_us_mean" in kv:
            out["mean_us"] = float(kv["rtt_us_mean"])
    elif "msgs_per_s" in kv:
        out["msgs_per_s"] = float(kv["msgs_per_s"])
    return system, config, out


def main(path):
    med, n = medians(path, parse)

    def get(system, cfg, key):
        return med.get((system, cfg), {}).get(key)

    def us(v):
        return f"{v:.2f} µs" if v is not None else "–"

    print(f"medians of {n} interleaved rounds (64-byte payloads)\n")
    print("| round trip | raw ZeroMQ (ipc / tcp) | raw UCX | amsg over UCX | amsg / raw UCX | amsg / raw ZeroMQ | target |")
    print("|---|---|---|---|---|---|---|")
    rows = (
        ("lat-shm-event", "lat-ipc", "shared memory, event-driven: p50", "p50_us", ""),
        ("lat-shm-event", "lat-ipc", "shared memory, event-driven: mean", "mean_us", "≤ 0.5× ZeroMQ's mean"),
        ("gap-shm-event", "gap-ipc", "shared memory, event, 500 µs gaps: p50", "p50_us", "≤ 0.5× ZeroMQ's p50"),
        ("lat-shm-poll", "lat-ipc", "shared memory, busy polling: p50", "p50_us", "≤ 3 µs"),
        ("lat-tcp-event", "lat-tcp", "tcp, event-driven: p50", "p50_us", "≤ 1.0× ZeroMQ tcp"),
        ("lat-tcp-poll", "lat-tcp", "tcp, busy polling: p50", "p50_us", "≤ 1.5× raw UCX"),
    )
    for cfg, zcfg, label, key, target in rows:
        # zmq_bench reports no mean: its p50 stands in (its mean is at least that)
        z = get("zmq", zcfg, "p50_us" if key == "mean_us" else key)
        u, a = get("ucx", cfg, key), get("amsg", cfg, key)
        ru = f"{a / u:.2f}×" if a and u else "–"
        rz = f"{a / z:.2f}×" if a and z else "–"
        print(f"| {label} | {us(z)} | {us(u)} | {us(a)} | {ru} | {rz} | {target} |")
    print()
    print("| throughput (amsg over UCX, shared memory) | event-driven | busy polling | target (busy polling) |")
    print("|---|---|---|---|")
    for cfg, label, target in (("thr", "notified one-way, N=64", "≥ 3 M msg/s"),
                               ("reqresp", "request/response, 64 outstanding", "≥ 1 M/s")):
        e, p = get("amsg", f"{cfg}-shm-event", "msgs_per_s"), get("amsg", f"{cfg}-shm-poll", "msgs_per_s")
        fe = f"{e / 1e6:.3f} M/s" if e else "–"
        fp = f"{p / 1e6:.3f} M/s" if p else "–"
        print(f"| {label} | {fe} | {fp} | {target} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/amsg-compare-ucx/raw.txt")

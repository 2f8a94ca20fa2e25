#!/usr/bin/env python3
"""Medians and ratios from bench/compare_zmq.sh's raw lines (zmq_bench key=value, amsg JSON)."""
import sys

from medians import json_values, key_values, medians, split_line


def parse(line):
    p = split_line(line)
    if not p:
        return None
    system, config, rest = p
    if system == "amsg":
        values = json_values(rest)
        out = {k: values[k] for k in ("msgs_per_s", "p50_us", "p99_us") if k in values}
    else:
        kv = key_values(rest)
        out = {}
        if "rtt_us_p50" in kv:
            out["p50_us"] = float(kv["rtt_us_p50"])
            out["p99_us"] = float(kv["rtt_us_p99"])
        elif "msgs_per_s" in kv:
            out["msgs_per_s"] = float(kv["msgs_per_s"])
        elif "requests_per_s" in kv:
            out["msgs_per_s"] = float(kv["requests_per_s"])
    return system, config, out


def main(path):
    med, n = medians(path, parse)
    print(f"medians of {n} interleaved rounds\n")
    print("| measurement | raw ZeroMQ | amsg | amsg / raw | target |")
    print("|---|---|---|---|---|")

    def get(system, cfg, key):
        return med.get((system, cfg), {}).get(key)

    for cfg, label in (("lat-ipc", "ipc"), ("lat-tcp", "tcp")):
        for key in ("p50_us", "p99_us"):
            z, a = get("zmq", cfg, key), get("amsg", cfg, key)
            if z and a:
                target = "≤ 1.1×" if key == "p50_us" else ""
                print(f"| notified round trip {key[:3]}, {label} | {z:.1f} µs | {a:.1f} µs | {a / z:.2f}× | {target} |")
    z, a = get("zmq", "thr-ipc", "msgs_per_s"), get("amsg", "thr-ipc", "msgs_per_s")
    if z and a:
        print(f"| notified one-way throughput, ipc, N=64 | {z / 1e6:.2f} M/s | {a / 1e6:.3f} M/s | {a / z:.2f}× | ≥ 1.5 M/s |")
    a = get("amsg", "reqresp-ipc", "msgs_per_s")
    z, zb = get("zmq", "reqresp-ipc", "msgs_per_s"), get("zmq", "reqresp-burst-ipc", "msgs_per_s")
    if a:
        raw = f"{z / 1e6:.3f} M/s" if z else ""
        ratio = f"{a / z:.2f}×" if z else ""
        print(f"| request/response, 64 outstanding, ipc | {raw} | {a / 1e6:.3f} M/s | {ratio} | ≥ 1.2× |")
        if zb:
            print(f"| (raw, 64 outstanding sent as one frame per burst) | {zb / 1e6:.3f} M/s | | {a / zb:.2f}× | ≥ 0.8× |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/amsg-compare-zmq/raw.txt")

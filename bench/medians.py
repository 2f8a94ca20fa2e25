"""Shared by the summarize scripts: raw benchmark lines to medians.

A raw line reads `system=S config=C <output>`; amsg's output is JSON objects,
the reference programs' output is key=value pairs.
"""
import json
import re
import statistics
from collections import defaultdict


def split_line(line):
    """(system, config, output) of a raw line, or None for other lines."""
    m = re.match(r"system=(\S+) config=(\S+) (.*)$", line.strip())
    return m.groups() if m else None


def json_values(output):
    """Every JSON object in the output, merged."""
    values = {}
    for obj in re.findall(r"\{.*?\}", output):
        values.update(json.loads(obj))
    return values


def key_values(output):
    """The key=value pairs in the output."""
    return dict(re.findall(r"(\w+)=([^\s]+)", output))


def medians(path, parse):
    """Medians of the values parse(line) -> (system, config, {key: value}) gives,
    as {(system, config): {key: median}}, and the number of rounds."""
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        p = parse(line)
        if p:
            system, config, values = p
            for k, v in values.items():
                runs[(system, config)][k].append(float(v))
    med = {key: {k: statistics.median(v) for k, v in d.items()} for key, d in runs.items()}
    n = max((len(v) for d in runs.values() for v in d.values()), default=0)
    return med, n

"""Parses wrk's --latency output: prints `rps p50_ms p99_ms non2xx socket_errors requests`."""
import re
import sys

UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", v)
    return float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")


text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
reqs = re.search(r"(\d+) requests in", text)
print("%.1f %.3f %.3f %d %d %d" % (
    float(rps.group(1)) if rps else 0.0,
    ms(p50.group(1)) if p50 else float("nan"),
    ms(p99.group(1)) if p99 else float("nan"),
    int(non2xx.group(1)) if non2xx else 0,
    sum(int(x) for x in sock.groups()) if sock else 0,
    int(reqs.group(1)) if reqs else 0))

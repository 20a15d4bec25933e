"""What each operation answered in a Schemathesis run, from its NDJSON event log.

    statuses.py EVENTS.ndjson             prints, per operation, how often each status came back
                                          (requests with and without an Authorization header)
    statuses.py --expect 429 EVENTS.ndjson  exits 1 unless some operation answered 429

Requests with a method the operation does not have (Schemathesis's unexpected-method probes,
answered 405) are counted apart. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from collections import Counter, defaultdict


def template_matcher(labels: set[str]):
    """`METHOD /path/{param}` labels -> a function from (method, URL) to the label it matches."""
    patterns = []
    for label in labels:
        method, _, path = label.partition(" ")
        regex = re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(path))
        # Literal paths first (/users/me before /users/{id}).
        patterns.append((path.count("{"), method, re.compile(f"^{regex}$"), label))
    patterns.sort(key=lambda p: (p[0], p[3]))

    def match(method: str, uri: str) -> str | None:
        path = urllib.parse.urlsplit(uri).path
        for _, m, regex, label in patterns:
            if m == method and regex.match(path):
                return label
        return None

    return match


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("--expect", type=int, help="exit 1 unless this status was answered")
    args = ap.parse_args()

    scenarios = []
    with open(args.events, encoding="utf-8") as f:
        for line in f:
            finished = json.loads(line).get("ScenarioFinished")
            if finished:
                scenarios.append(finished)
    labels = {s["recorder"]["label"] for s in scenarios if s.get("phase") != "stateful" and s.get("recorder")}
    match = template_matcher(labels)

    by_op: dict[str, Counter] = defaultdict(Counter)
    authed: Counter = Counter()
    other_methods: Counter = Counter()
    for finished in scenarios:
        for interaction in ((finished.get("recorder") or {}).get("interactions") or {}).values():
            request = interaction.get("request") or {}
            status = (interaction.get("response") or {}).get("status_code")
            if status is None:
                continue
            op = match(request.get("method", ""), request.get("uri", ""))
            if op is None:
                other_methods[status] += 1
                continue
            by_op[op][status] += 1
            if any(k.lower() == "authorization" for k in request.get("headers") or {}):
                authed[op] += 1

    if args.expect is not None:
        return 0 if any(args.expect in c for c in by_op.values()) else 1

    print("statuses answered (count; 'auth' = requests that carried an Authorization header):")
    for op in sorted(by_op, key=lambda o: (o.split(" ", 1)[-1], o)):
        counts = by_op[op]
        total = sum(counts.values())
        spread = " ".join(f"{s}x{n}" for s, n in sorted(counts.items()))
        print(f"  {op:<66} {spread}  (auth {authed[op]}/{total})")
    if other_methods:
        spread = " ".join(f"{s}x{n}" for s, n in sorted(other_methods.items()))
        print(f"  {'(methods the operations do not have)':<66} {spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

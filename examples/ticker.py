#!/usr/bin/env python3
"""Tick once a second for a while (default 60 ticks): something to watch, stop or pause."""

import argparse
import time

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--ticks", type=int, default=60, help="how many ticks")
parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
options = parser.parse_args()

for i in range(1, options.ticks + 1):
    print(f"tick {i}/{options.ticks}", flush=True)
    time.sleep(options.interval)
print("done")

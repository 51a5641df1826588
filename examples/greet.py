#!/usr/bin/env python3
"""Greet someone: shows how arguments reach a script."""

import argparse

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("name", help="who to greet")
parser.add_argument("--times", type=int, default=1, help="how many times")
parser.add_argument("--shout", action="store_true", help="use capitals")
options = parser.parse_args()

for _ in range(options.times):
    text = f"Hello, {options.name}!"
    print(text.upper() if options.shout else text)

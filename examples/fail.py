#!/usr/bin/env python3
"""Fail on purpose: writes to stderr and exits with code 3."""

import sys

print("starting the job")
print("something went wrong: the input file is missing", file=sys.stderr)
sys.exit(3)

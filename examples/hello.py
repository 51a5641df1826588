#!/usr/bin/env python3
"""Say hello: the smallest possible script."""

import os

print("Hello from ScriptOps!")
print(f"run id: {os.environ.get('SCRIPTOPS_RUN_ID')}")

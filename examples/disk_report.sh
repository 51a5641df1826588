#!/usr/bin/env bash
# Report disk usage of the working directory: a shell example.
set -euo pipefail
echo "Host: $(hostname)"
echo "Working directory: $(pwd)"
df -h . | tail -n 1
echo "Files here: $(ls -1 | wc -l)"

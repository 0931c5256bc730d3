#!/usr/bin/env python3
"""Peak resident memory of one command: `python3 benches/peak_rss.py CMD ARGS...` prints its maximum
resident set size in MB (the kernel's ru_maxrss of the finished child), after the command's own output."""
import resource
import subprocess
import sys

subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")

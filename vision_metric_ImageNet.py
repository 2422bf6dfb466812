#!/usr/bin/env python3
"""Stage placeholder: this stage lands with its own issue."""

import sys

if __name__ == "__main__":
    print("vision_metric_ImageNet.py: not yet implemented in this version", file=sys.stderr)
    sys.exit(2)

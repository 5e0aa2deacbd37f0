"""`python -m engine.rules.smoke` < ruleset.yaml: compile and exercise a ruleset in durable_rules
in this (child) process; exit 0 when it works. See engine.rules.store.smoke_test."""

import sys

from engine.rules.store import smoke_main

if __name__ == "__main__":
    sys.exit(smoke_main())

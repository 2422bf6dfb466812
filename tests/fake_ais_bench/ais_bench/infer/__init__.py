"""Stand-in for `ais_bench.infer`, tests only: only `interface` is modelled."""

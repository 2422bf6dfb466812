"""Stand-in for the `ais_bench` package (ait/components/benchmark/ais_bench), tests only. Like the
real one it defines no `__version__`: the version lives in the package metadata (setup.py's
`version='0.0.2'`), here ../ais_bench.egg-info/PKG-INFO."""

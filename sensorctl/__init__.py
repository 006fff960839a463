"""``sensorctl``: the operator's command line — ``status NAME`` and ``backfill`` (see ``docs/local.md``)."""

"""The machinery the case kinds (``harness.kinds``) share: job, collect, closeness, oracle glue, runner."""

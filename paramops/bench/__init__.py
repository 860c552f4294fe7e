"""The benchmark of paramops against torch.nn.init (python -m paramops bench): cases (what is
timed: single tensors, model parameter lists, and in calls the call path and whole builds),
timing (timers and the runner), report (tables, JSON, plots), cli (the command line)."""

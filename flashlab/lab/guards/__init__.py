"""Live guards: judging a run while it runs, and the steady-state check before the first fault.

One module per job:

    grammar   a guard's text -> `Guard` (light: what an experiment file needs to validate)
    monitor   `GuardMonitor`: the guards evaluated over the history batches as they arrive
    steady    `SteadyStateCheck`: the hypothesis and readiness probed before the first fault
    watch     `RunWatch`: the above wired around one run's load (a run event handler)

The abort switch they trip is flashlab.lab.abort. This file imports nothing, so an experiment
file's parser (flashlab.lab.experiment) imports the grammar alone, not the monitor's thread and
pandas window.
"""

"""The experiments shipped with flashlab, as package data (`flashlab.experiments`): run one by name.

`flashlab run smoke` finds experiments/smoke.yaml here through importlib.resources, from any
directory, once flashlab is installed; `flashlab experiments` lists them.
"""

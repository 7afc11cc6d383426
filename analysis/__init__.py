"""Analysis: judging run directories - checks, statistics, hypotheses, trial sets, sweeps, plots, reports."""

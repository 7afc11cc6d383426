"""Analysis: loading run directories, the consistency checker, statistics, hypotheses, plots and reports."""

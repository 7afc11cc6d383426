"""The lab layer: experiments and how a run, a matrix, trials and sweeps are carried out.

It wires the stack (system), the shoppers (simulator) and the faults (chaos), then hands the run
directory to analysis for judging."""

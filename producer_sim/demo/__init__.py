"""`python -m producer_sim demo`: the whole pipeline on this machine, on `producer_sim.cluster`.

`command` parses the options and runs the demo through its cleanup; `settings` holds what it
runs with; `run` holds its steps and stops what they started; `broker`, `topics` and `view` are
the broker it uses, the topics it makes afresh and the live view of the workers' metrics.
"""

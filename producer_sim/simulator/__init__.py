"""`python -m producer_sim simulate`: labelled synthetic sequences sent to the input topic.

`command` parses the options and runs; `settings` holds them; `workload` makes the sequences
(and, with `faults`, the deliberately bad records); `sender` produces them at the `rate` asked
for, writing the labels file as it goes; `progress` is the line it prints while it runs.
"""

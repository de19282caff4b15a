"""`python -m producer_sim evaluate`: the outputs scored against the simulator's labels.

`command` reads the output topic until it is quiet; `scores` joins outputs with labels and
computes the figures, without Kafka; `report` writes them (`report.json`) and `figure` draws
`report.png` (matplotlib, imported only there).
"""

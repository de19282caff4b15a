"""The local cluster that the demo, the benchmarks and the tests run: a broker of
deploy/kafka/local-kafka.sh (`broker`), worker processes (`worker`, on `child`), and what they are
started with: an environment (`env`), free ports (`ports`), signal-safe process handling
(`processes`).

One copy of each, so the three users pick ports, set up environments and stop processes alike.
"""

from __future__ import annotations

from pathlib import Path

# The checkout: where deploy/kafka/local-kafka.sh is, and the children's working directory.
REPO = Path(__file__).resolve().parents[2]

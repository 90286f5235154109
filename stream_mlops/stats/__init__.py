"""The public statistics API, kept where users import it from.

The statistics live in their features (pure: values and a clock in, decisions out, no
I/O); this module re-exports the factories most users want:

* :func:`make_detector` — streaming drift detection for numeric, binary and categorical
  metrics (``stream_mlops.stats.drift``);
* :func:`make_test` — always-valid sequential A/B tests of means and proportions
  (``stream_mlops.stats.sequential``), with :class:`SRMTest` for the traffic split.
"""

from stream_mlops.stats.drift import compare_windows, make_detector
from stream_mlops.stats.sequential import SRMTest, make_test

__all__ = ["SRMTest", "compare_windows", "make_detector", "make_test"]

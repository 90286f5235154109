"""Pure statistics: values and a clock in, decisions out. Nothing here performs I/O.

The two factories most users want:

* :func:`make_detector` — streaming drift detection for numeric, binary and categorical
  metrics (``stream_mlops.stats.drift``);
* :func:`make_test` — always-valid sequential A/B tests of means and proportions
  (``stream_mlops.stats.sequential``), with :class:`SRMTest` for the traffic split.
"""

from stream_mlops.stats.drift import compare_windows, make_detector
from stream_mlops.stats.sequential import SRMTest, make_test

__all__ = ["SRMTest", "compare_windows", "make_detector", "make_test"]

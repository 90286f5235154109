"""Model cards generated from live evidence: versioned, regenerated on schedule, on
drift and on deployment."""

"""The contract every monitor is written against: the batch it observes, the series index
it reads, the alert changes it emits and the store it restores from (pure: no I/O)."""

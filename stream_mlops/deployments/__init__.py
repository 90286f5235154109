"""Blue-green deployments of AI functions: routing, gradual traffic shifting, and a
rollback gate that stays valid while it is watched."""

"""Glue that turns configs into jobs: config files, the jobs the verbs run, result files, MLflow tracking,
tables and plots of the comparison.

May import every layer below it: core, data, space, proxies, search, training.
"""

"""Studies of what the methods are worth: the evidence study (rank correlations, search vs random, the
reference-compat ablation), its statistics, and the speed benchmark.

May import every layer below it, the pipeline included (a study runs search, train and evaluate jobs).
"""

"""Configs the workflow tests derive from config/test.yaml, written once."""


def with_budgeted_workers(config: dict) -> dict:
    """The test config with the budgeted search (two workers on one study, a spent budget of 4 tiny trials)
    beside random, tracking off."""
    config["workflow"].update(methods=["budgeted", "random"], variants={}, table1=None)
    config["search"]["budgeted"] = {"workers": 2, "trials": 4, "epochs": 2, "pool": 8, "max_batches": 2,
                                    "batch_size": 32, "energy_val_samples": 8, "pruner": "none"}
    config["tracking"] = {"enabled": False}
    return config

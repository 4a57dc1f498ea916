import pytest
import torch

from lightsnn.space.network import NetConfig

# A network small enough that a whole search runs in seconds on one CPU core.
TINY = NetConfig(in_channels=1, image_size=8, num_classes=10, channels=4, timesteps=3, classifier_width=16,
                 num_cluster=2)

TINY_CONFIG = {
    "device": "cpu",
    "networks": {"digits": {"channels": 4, "timesteps": 2, "classifier_width": 16, "num_cluster": 2}},
    "search": {
        "snasnet": {"num_search": 6, "batch_size": 8},
        "lightsnn": {"batch_size": 8},
        "spikenas": {"candidates_per_cell": 3, "batch_size": 8},
    },
}


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny():
    return TINY


@pytest.fixture
def tiny_config():
    import copy
    return copy.deepcopy(TINY_CONFIG)

import subprocess
import sys

import pytest

CHECK = ("from lightsnn.core.runtime import keep_freed_memory; import ctypes, ctypes.util;"
         "print(keep_freed_memory())")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("env, expected", [({}, "True"), ({"LIGHTSNN_DEFAULT_MALLOC": "1"}, "False")])
def test_allocator_tuning_applies_on_glibc_and_can_be_switched_off(env, expected):
    import os
    run = subprocess.run([sys.executable, "-c", CHECK], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == expected


def test_a_hand_run_command_takes_the_idle_cpus(monkeypatch, tmp_path):
    import os

    import torch

    from lightsnn.cli import main
    from lightsnn.core.runtime import default_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert default_threads() == 1  # 4 CPUs, 2.6 busy: 1.4 idle
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert default_threads() == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert default_threads() == 1  # never none
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 0.0, 0.0))
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(3)
    main(["prepare", "--dataset", "digits"])
    assert torch.get_num_threads() == 2  # 4 CPUs less 2 busy
    main(["prepare", "--dataset", "digits", "--threads", "1"])
    assert torch.get_num_threads() == 1

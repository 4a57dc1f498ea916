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

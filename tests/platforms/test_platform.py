import os
import subprocess
import sys
import textwrap

import pytest
import torch

from foundations.errors import UserError
from platforms.lock import run_lock
from platforms.storage import load_torch, read_json, save_torch, write_json


def test_a_locked_run_dir_refuses_a_second_holder_and_frees_on_exit(tmp_path):
    with run_lock(tmp_path / "run"):
        with pytest.raises(UserError, match="being trained by pid"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released: free again
        pass


def test_the_lock_of_a_killed_process_is_not_stale(tmp_path):
    script = textwrap.dedent(f"""
        import os
        from platforms.lock import run_lock
        with run_lock({str(tmp_path / 'run')!r}):
            os._exit(9)  # dies holding the lock
    """)
    subprocess.run([sys.executable, "-c", script], cwd=os.getcwd())
    with run_lock(tmp_path / "run"):
        pass


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    save_torch({"w": torch.arange(3)}, tmp_path / "a.pt")
    write_json({"x": 1}, tmp_path / "a.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.pt"]
    assert torch.equal(load_torch(tmp_path / "a.pt")["w"], torch.arange(3))
    assert read_json(tmp_path / "a.json") == {"x": 1}

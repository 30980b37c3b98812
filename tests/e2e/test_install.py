"""`pip install .` in a clean virtualenv builds the Cython core and the protobuf modules and gives a
working `esimota` command (issue: foundation)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pip_install_in_a_clean_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    src = tmp_path / "src"
    # install from a copy of the tracked files, as a fresh clone would have them
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        dst = src / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / f).exists():
            dst.write_bytes((ROOT / f).read_bytes())
    res = subprocess.run(pip + ["install", "-q", str(src)], capture_output=True, text=True, timeout=850)
    assert res.returncode == 0, res.stderr[-3000:]
    esimota = venv / "bin" / "esimota"
    out = subprocess.run([str(esimota), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "serve" in out.stdout and "db" in out.stdout
    probe = ("import esimota, glob, os; d = os.path.dirname(esimota.__file__);"
             "print(len(glob.glob(d + '/**/*.so', recursive=True)), len(glob.glob(d + '/v1/*_pb2.py')),"
             " len(glob.glob(d + '/api/console/static/console.*')))")
    counts = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60).stdout.split()
    # one extension per .pyx, plus each .py compiled with the .pxd beside it (STYLE 3)
    n_ext = len(list((src / "ext" / "esimota" / "_ext").glob("*.pyx")))
    n_ext += len([p for p in (src / "src").rglob("*.pxd") if p.with_suffix(".py").exists()])
    n_proto = len(list((src / "proto" / "esimota" / "v1").glob("*.proto")))
    assert counts == [str(n_ext), str(n_proto), "2"]  # the console's script and stylesheet ship in the package


def test_generated_code_is_not_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bad = [f for f in files if f.endswith((".so", ".c", "_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))]
    assert bad == []

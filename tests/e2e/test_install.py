"""`pip install` as a fresh clone's user would: the built wheel works with the newest dependencies and
with every direct dependency at its declared floor (issue 17: installable as declared)."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# every module of the package, imported one by one; a failure names the module and the error
IMPORT_ALL = """
import importlib, json, pkgutil, sys, esimota
bad = []
for m in pkgutil.walk_packages(esimota.__path__, "esimota."):
    if m.name.endswith(".__main__"):  # `python -m esimota.cli` runs the command: not a module to import
        continue
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        bad.append(f"{m.name}: {type(exc).__name__}: {exc}")
print(json.dumps({"modules": len(list(pkgutil.walk_packages(esimota.__path__, "esimota."))), "bad": bad}))
"""


def _tracked_copy(dst: Path) -> Path:
    """The tracked files only, as a fresh clone has them (no .so, no generated code)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).exists():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            (dst / f).write_bytes((ROOT / f).read_bytes())
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """One wheel built in an isolated build environment from build-system.requires (grpcio-tools pinned)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _tracked_copy(tmp / "src")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=850)
    assert res.returncode == 0, res.stderr[-3000:]
    (built,) = (tmp / "dist").glob("esimota-*.whl")
    return built


def _venv(path: Path) -> list[str]:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return [str(path / "bin" / "python"), "-m", "pip"]


def floors() -> dict[str, str]:
    """name -> the version each direct runtime dependency declares as its lowest (`>=X`)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        spec = dep.split(";")[0]
        name = re.match(r"[A-Za-z0-9_.-]+", spec).group(0)
        m = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
        assert m, f"{name} declares no floor"
        out[name] = m.group(1)
    return out


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_wheel_in_a_clean_venv(wheel, tmp_path):
    pip = _venv(tmp_path / "venv")
    res = subprocess.run(pip + ["install", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    esimota = tmp_path / "venv" / "bin" / "esimota"
    out = subprocess.run([str(esimota), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "serve" in out.stdout and "db" in out.stdout
    probe = ("import esimota, glob, os; d = os.path.dirname(esimota.__file__);"
             "print(len(glob.glob(d + '/**/*.so', recursive=True)), len(glob.glob(d + '/v1/*_pb2.py')),"
             " len(glob.glob(d + '/**/*.c', recursive=True)), int(os.path.exists(d + '/py.typed')),"
             " len(glob.glob(d + '/api/console/static/console.*')))")
    counts = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", probe], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60).stdout.split()
    # one extension per .pyx, plus each .py compiled with the .pxd beside it (STYLE 3); no C shipped
    n_ext = len(list((ROOT / "ext" / "esimota" / "_ext").glob("*.pyx")))
    n_ext += len([p for p in (ROOT / "src").rglob("*.pxd") if p.with_suffix(".py").exists()])
    n_proto = len(list((ROOT / "proto" / "esimota" / "v1").glob("*.proto")))
    assert counts == [str(n_ext), str(n_proto), "0", "1", "2"]  # the console's script and stylesheet ship too


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_declared_floors_install_and_import(wheel, tmp_path):
    """Every direct dependency at exactly its declared floor: the wheel installs, every module imports,
    and the generated protobuf/gRPC code accepts the runtimes (no gencode/runtime mismatch)."""
    pins = floors()
    assert {"protobuf", "grpcio", "asyncpg", "aiohttp"} <= set(pins)
    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    pip = _venv(tmp_path / "venv")
    res = subprocess.run(pip + ["install", "-q", "-c", str(constraints), str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    frozen = subprocess.run(pip + ["freeze"], capture_output=True, text=True, timeout=60).stdout.lower()
    for name, version in pins.items():
        assert f"{name.lower().replace('_', '-')}=={version}" in frozen.replace("_", "-"), (name, frozen)
    out = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", IMPORT_ALL], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["bad"] == [] and report["modules"] > 50
    assert "gencode" not in out.stderr.lower()
    serve = subprocess.run([str(tmp_path / "venv" / "bin" / "esimota"), "serve", "--help"], capture_output=True,
                           text=True, timeout=60)
    assert serve.returncode == 0 and "--grpc-port" in serve.stdout


def test_build_pins_the_generator_the_runtime_floors_accept():
    """grpcio-tools pinned exactly; grpcio's floor is that version (its *_pb2_grpc.py refuses an older
    grpcio) and protobuf's floor is the gencode version that grpcio-tools' protoc writes."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tools = [r for r in meta["build-system"]["requires"] if r.startswith("grpcio-tools")]
    assert len(tools) == 1 and "==" in tools[0]
    pinned = tools[0].split("==")[1]
    pins = floors()
    assert pins["grpcio"] == pins["grpcio-health-checking"] == pins["grpcio-reflection"] == pinned
    generated = sorted((ROOT / "src" / "esimota" / "v1").glob("*_pb2.py"))
    if not generated:
        pytest.fail("make install generates src/esimota/v1/*_pb2.py; none found")
    gencode = re.search(r"# Protobuf Python Version: (\S+)", generated[0].read_text()).group(1)
    assert pins["protobuf"] == gencode
    grpc_gen = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'",
                         (ROOT / "src" / "esimota" / "v1" / "writing_pb2_grpc.py").read_text()).group(1)
    assert grpc_gen == pinned


def test_license_and_generated_code_are_not_tracked_the_wrong_way():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bad = [f for f in files if f.endswith((".so", ".c", "_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))]
    assert bad == []
    assert "LICENSE" in files and "src/esimota/py.typed" in files

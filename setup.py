"""Build hooks only (STYLE 6): the Cython extensions from ext/ and the protobuf/gRPC modules from proto/."""

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_py import build_py as _build_py

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("ESIMOTA_DEBUG") == "1"

# Compiler directives live here and nowhere else; bounds checks are switched off per function
# in the .pyx sources (@cython.boundscheck(False)), never globally.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "cdivision": True,
    "linetrace": DEBUG,
    "profile": False,
}


def _extensions():
    """Each ext/esimota/_ext/NAME.pyx -> esimota._ext.NAME; compiled .py modules are listed below."""
    macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [("CYTHON_WITHOUT_ASSERTIONS", "1")]
    args = ["-O0", "-g"] if DEBUG else ["-O2"]
    exts = []
    for pyx in sorted(glob.glob(os.path.join("ext", "esimota", "_ext", "*.pyx"))):
        name = "esimota._ext." + os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(name, [pyx], include_dirs=["ext"], define_macros=macros,
                              extra_compile_args=args))
    # Python sources compiled with an augmenting .pxd beside them (STYLE 3): no second copy.
    for py in COMPILED_PY:
        name = py[len("src/"):-3].replace("/", ".")
        exts.append(Extension(name, [py], include_dirs=["ext"], define_macros=macros,
                              extra_compile_args=args))
    if not exts:
        return []
    from Cython.Build import cythonize

    return cythonize(exts, compiler_directives=DIRECTIVES, include_path=["ext"],
                     quiet=True, annotate=False, nthreads=0)


# .py modules that are also compiled (their .pxd sits beside them).
COMPILED_PY = [p for p in ["src/esimota/ota/_mux.py"] if os.path.exists(os.path.join(HERE, p))]


def generate_protos(out_dir: str) -> None:
    """protoc -Iproto --python_out --grpc_python_out --pyi_out for every proto/esimota/**.proto."""
    protos = sorted(glob.glob(os.path.join(HERE, "proto", "esimota", "**", "*.proto"), recursive=True))
    if not protos:
        return
    import grpc_tools
    from grpc_tools import protoc

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    includes = [os.path.join(HERE, "proto"), wkt]
    # google/api/annotations.proto and http.proto ship with googleapis-common-protos
    includes += [p for p in sys.path if os.path.isfile(os.path.join(p, "google", "api", "http.proto"))][:1]
    args = ["protoc"] + [f"-I{i}" for i in includes] + [
        f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", f"--pyi_out={out_dir}"] + protos
    if protoc.main(args) != 0:
        sys.exit("esimota: protoc failed on " + " ".join(protos))


class build_py(_build_py):
    """Generate the protobuf modules into src/ (git-ignored) before the ordinary copy."""

    def run(self):
        generate_protos(os.path.join(HERE, "src"))
        super().run()


setup(ext_modules=_extensions(), cmdclass={"build_py": build_py})

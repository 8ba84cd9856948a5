"""Generate the one Python contract package (contract/transcribe/) from the proto, or check it.

``check_generated.py`` fails when the committed generated code differs from what the proto gives
now; ``check_generated.py --write`` rewrites it. protoc is run from the proto root, so descriptors
and server reflection name the file ``transcribe/v1/transcribe.proto``, as every language does.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = "transcribe/v1/transcribe.proto"
PACKAGE = ROOT / "contract" / "transcribe" / "v1"
GENERATED = ("transcribe_pb2.py", "transcribe_pb2.pyi", "transcribe_pb2_grpc.py", "transcribe_pb2_grpc.pyi")


def generate(out: Path) -> Path:
    """Run protoc (with the mypy plugins found next to this interpreter) into ``out``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            PROTO,
        ],
        cwd=ROOT / "proto",
        env=env,
        check=True,
        capture_output=True,
    )
    return out / "transcribe" / "v1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the committed generated code")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        if args.write:
            for name in GENERATED:
                shutil.copyfile(fresh / name, PACKAGE / name)
            print(f"generated {', '.join(GENERATED)} into {PACKAGE.relative_to(ROOT)}")
            return 0
        stale = [
            name
            for name in GENERATED
            if not (PACKAGE / name).exists() or not filecmp.cmp(fresh / name, PACKAGE / name, shallow=False)
        ]
    if stale:
        print(f"generated code is out of date ({', '.join(stale)}): run `make generate`", file=sys.stderr)
        return 1
    print("generated code is in sync with the proto")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fail when the committed generated Python differs from what the proto generates now."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = "proto/transcribe/v1/transcribe.proto"
PB_DIR = "gateway/_pb"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PB_DIR}=proto",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                f"--mypy_out={tmp}",
                f"--mypy_grpc_out={tmp}",
                PROTO,
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        fresh = Path(tmp) / PB_DIR / "transcribe" / "v1"
        committed = ROOT / PB_DIR / "transcribe" / "v1"
        stale = [
            p.name
            for p in sorted(fresh.iterdir())
            if not (committed / p.name).exists() or not filecmp.cmp(p, committed / p.name, shallow=False)
        ]
    if stale:
        print(f"generated code is out of date ({', '.join(stale)}): run `make proto`", file=sys.stderr)
        return 1
    print("generated code is in sync with the proto")
    return 0


if __name__ == "__main__":
    sys.exit(main())

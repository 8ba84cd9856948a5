from __future__ import annotations

from transcribe_engine.cli import main

if __name__ == "__main__":
    main()

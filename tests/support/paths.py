"""Where things are: the checkout, the project's test data, and the optional shared corpus."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
DATA = ROOT / "tests" / "data"
# Results messages in the shape Deepgram's live API sends them (tests/data/deepgram/README.md).
FIXTURES = DATA / "deepgram"
# Real speech with reference transcripts: optional, only on machines that have ../shared.
CORPUS = ROOT.parent / "shared" / "corpus"

"""Write the JSON Schema of every topic's model to ``schemas/json/<topic>.json``.

The models are the source of truth; the JSON files are what venues and other-language
consumers read, checked in so that a schema change shows up in review. ``--check``
(run by the unit tests) fails when the files and the models have drifted apart.

    python -m schemas.gen            # rewrite the files
    python -m schemas.gen --check    # exit 1 and name the files that differ
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from schemas.models import TOPIC_MODELS

JSON_DIR = Path(__file__).resolve().parent / "json"


def render(model: type[BaseModel]) -> str:
    """The file content for *model*: sorted keys, indent 2, trailing newline."""
    # Validation mode: the schema says what a producer may send.
    schema = model.model_json_schema(mode="validation")
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def expected(json_dir: Path = JSON_DIR) -> dict[Path, str]:
    """Each topic's file path and the content it should have."""
    return {json_dir / f"{topic}.json": render(model) for topic, model in TOPIC_MODELS.items()}


def drifted(json_dir: Path = JSON_DIR) -> list[Path]:
    """Files that are missing, differ from the models, or belong to no topic."""
    want = expected(json_dir)
    stale = sorted(set(json_dir.glob("*.json")) - want.keys())
    differ = [
        path
        for path, text in want.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    return differ + stale


def write(json_dir: Path = JSON_DIR) -> list[Path]:
    """Bring *json_dir* in line with the models; return the paths changed or removed."""
    want = expected(json_dir)
    changed = drifted(json_dir)
    json_dir.mkdir(parents=True, exist_ok=True)
    for path in changed:
        if path in want:
            path.write_text(want[path], encoding="utf-8")
        else:
            path.unlink()  # a topic's model was removed or renamed
    return changed


def main(argv: Sequence[str] | None = None, *, json_dir: Path = JSON_DIR) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.gen", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the files that differ from the models",
    )
    args = parser.parse_args(argv)
    if args.check:
        paths = drifted(json_dir)
        for path in paths:
            print(f"{path}: differs from the models", file=sys.stderr)
        if paths:
            print("run: python -m schemas.gen", file=sys.stderr)
        return 1 if paths else 0
    for path in write(json_dir):
        print(f"wrote {path}" if path.exists() else f"removed {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

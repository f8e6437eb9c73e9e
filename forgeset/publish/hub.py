"""Publish a corpus: a Hub-ready folder (shards under data/, manifest, index, croissant.json, card) and its upload.

The upload is a sequence of commits (the shards of one split at a time, up to `batch` files, the
card last), each made with `create_commit`. Before each commit the Hub reports which files it
already holds with the same content, and those are skipped: an interrupted upload, run again,
sends only what is missing. The token comes from HF_TOKEN or the login cache and is never printed,
logged or written.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forgeset.manifests.corpus import Corpus
from forgeset.manifests.croissant import write_croissant
from forgeset.manifests.layout import CARD_NAME, CROISSANT_NAME, SIDE_FILES, path_inside
from forgeset.publish.card import render_card

DEFAULT_TIERS = {"xs": 1, "s": 4, "m": 16}
RELEASE_DATA_DIR = "data"
# One part of a Hub repo id: letters, digits, '-', '_', '.'; neither starting nor ending with '-' or '.'.
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
REPO_ID_RULE = (
    "NAMESPACE/NAME, each part 1-96 letters, digits, '-', '_' or '.', not starting or ending with '-' or '.', "
    "without '--' or '..', not ending in '.git'"
)


def validate_repo_id(repo_id: str) -> str:
    """`repo_id` when it is a Hub dataset id NAMESPACE/NAME (see REPO_ID_RULE); else ValueError naming it."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if (
        len(parts) != 2
        or not all(_REPO_PART.fullmatch(part) for part in parts)
        or "--" in repo_id
        or ".." in repo_id
        or repo_id.endswith(".git")
    ):
        raise ValueError(f"invalid Hub dataset repo id {repo_id!r}: expected {REPO_ID_RULE}")
    return repo_id


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when possible (no second copy of the bytes), else copy (no hard links, another device)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def stage_release(out_dir: Path, folder: Path, repo_id: str, tiers: dict[str, int]) -> list[str]:
    """Write the Hub layout of `out_dir` into `folder`; return its files (relative, upload order).

    A `repo_id` that is not a Hub dataset id raises ValueError before anything is read or written.
    """
    validate_repo_id(repo_id)
    corpus = Corpus.open(out_dir)
    card = render_card(corpus, repo_id, tiers)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for shard in corpus.shards():
        link_or_copy(corpus.layout.shard(shard.path), path_inside(folder, RELEASE_DATA_DIR, shard.path))
        files.append(f"{RELEASE_DATA_DIR}/{shard.path}")
    for name in SIDE_FILES:
        if (out_dir / name).exists():
            link_or_copy(out_dir / name, folder / name)
            files.append(name)
    write_croissant(
        corpus, folder, url=f"https://huggingface.co/datasets/{repo_id}", shard_prefix=f"{RELEASE_DATA_DIR}/"
    )
    files.append(CROISSANT_NAME)
    (folder / CARD_NAME).write_text(card, encoding="utf-8")
    files.append(CARD_NAME)
    return files


@dataclass
class UploadReport:
    """What an upload went through: commit batches and files (unchanged ones were not re-sent)."""

    batches: int
    files: int


def _batches(files: list[str], batch: int) -> list[list[str]]:
    """Shards grouped by split in chunks of `batch`; side files and the card in the last commit."""
    groups: dict[str, list[str]] = {}
    for path in files:
        key = path.split("/")[1] if path.startswith(f"{RELEASE_DATA_DIR}/") else "~side"
        groups.setdefault(key, []).append(path)
    out = []
    for key in sorted(groups):
        paths = groups[key]
        out += [paths[i : i + batch] for i in range(0, len(paths), batch)]
    return out


def upload_release(
    folder: Path,
    files: list[str],
    repo_id: str,
    private: bool,
    batch: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> UploadReport:
    """Create the dataset repo (if needed) and commit `files` in batches, skipping unchanged ones."""
    validate_repo_id(repo_id)
    from huggingface_hub import CommitOperationAdd, HfApi

    # HF_ENDPOINT (a mirror, a private Hub) is read here, not at import; the token comes from HF_TOKEN or the
    # login cache inside huggingface_hub and never passes through forgeset.
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT"))
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    done = 0
    batches = _batches(files, batch)
    for number, paths in enumerate(batches, start=1):
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in paths]
        api.create_commit(
            repo_id, operations, repo_type="dataset", commit_message=f"forgeset publish ({number}/{len(batches)})"
        )
        done += len(paths)
        if progress:
            progress(done, len(files))
    return UploadReport(batches=len(batches), files=len(files))

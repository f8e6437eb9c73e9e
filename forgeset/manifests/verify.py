"""`forgeset verify`: check every byte of a built corpus against its own index.json.

Checked: index.json's own content hash; the sha256 and size of the manifest, the rejects, the
resolved spec and every shard; that spec_sha256 is the hash of spec.resolved.yaml; every sample's
members, image hash, size and decoding; that each KEY.json equals its manifest row field by field;
the counts and leakage figures recomputed from the manifest. Files under OUT that the index does
not know (other than build state and other commands' outputs) are listed; `strict` fails on them.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from forgeset.manifests import layout
from forgeset.manifests.bias_probe import bias_probe, leakage
from forgeset.manifests.corpus import Corpus, CorpusError, CorpusSample
from forgeset.manifests.index import VOUCHED_FILES, count_table
from forgeset.manifests.schema import LABELS
from forgeset.manifests.shard_writer import file_sha256


class CorpusInvalid(CorpusError):
    """The first problem found; the message names the shard or sample."""


def _check_sample(sample: CorpusSample, localized: bool, sizes: set[int]) -> None:
    row, members = sample.row, sample.members
    where = f"{sample.shard}: sample {sample.key}"
    image_member = layout.image_member(row["format"])
    expected = set(layout.sample_members([row["format"]], localized))
    if set(members) != expected:
        raise CorpusInvalid(f"{where} has members {sorted(members)}, expected {sorted(expected)}")
    image_bytes = members[image_member]
    if hashlib.sha256(image_bytes).hexdigest() != row["sha256"]:
        raise CorpusInvalid(f"{where}: image sha256 differs from the manifest")
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.load()
            dims = image.size
    except Exception as err:
        raise CorpusInvalid(f"{where}: image does not decode ({err})") from None
    if dims != (row["width"], row["height"]):
        raise CorpusInvalid(f"{where}: image is {dims[0]}x{dims[1]}, the manifest says {row['width']}x{row['height']}")
    if row["width"] not in sizes:
        raise CorpusInvalid(f"{where} is {row['width']} px, the policy allows {sorted(sizes)}")
    try:
        meta = json.loads(members[layout.JSON_MEMBER])
    except (ValueError, RecursionError) as err:
        raise CorpusInvalid(f"{where}: json member does not parse ({err})") from None
    expected_meta = sample.member_row
    if not isinstance(meta, dict) or set(meta) != set(expected_meta):
        raise CorpusInvalid(f"{where}: json fields differ from the manifest's")
    for field, value in expected_meta.items():
        if meta[field] != value or type(meta[field]) is not type(value):
            raise CorpusInvalid(f"{where}: json {field}={meta[field]!r}, manifest {value!r}")
    if members[layout.CLS_MEMBER] != str(LABELS[row["label"]]).encode():
        raise CorpusInvalid(f"{where}: cls {members[layout.CLS_MEMBER]!r} does not match label {row['label']!r}")
    mask_bytes = members.get(layout.MASK_MEMBER)
    if mask_bytes is not None:
        try:
            with Image.open(io.BytesIO(mask_bytes)) as mask:
                mask.load()
                mode, mask_size = mask.mode, mask.size
        except Exception as err:
            raise CorpusInvalid(f"{where}: mask does not decode ({err})") from None
        if mask_size != dims or mode != "L":
            raise CorpusInvalid(f"{where}: mask is {mode} {mask_size}, expected L {dims}")


def unlisted_files(corpus: Corpus) -> list[str]:
    """Files under OUT that index.json does not vouch for (build state and command outputs aside)."""
    known = set(VOUCHED_FILES) | {layout.INDEX_NAME} | {shard.path for shard in corpus.shards()}
    found = []
    for path in sorted(corpus.root.rglob("*")):
        relative = path.relative_to(corpus.root).as_posix()
        if (path.is_file() or path.is_symlink()) and relative not in known and not layout.is_product_path(relative):
            found.append(relative)
    return found


def verify_corpus(out_dir: Path, progress: Callable[[int], None] | None = None, strict: bool = False) -> dict[str, Any]:
    """Re-hash every file, decode every image, check members, labels, keys, rows and counts.

    Raises CorpusError (CorpusInvalid) naming the first file, shard or sample that is wrong;
    returns totals and the unlisted files if all is well (`strict`: unlisted files are an error).
    """
    corpus = Corpus.open(out_dir)
    index = corpus.index
    if corpus.table.num_rows != index.samples:
        raise CorpusInvalid(f"manifest has {corpus.table.num_rows} rows, index.json says {index.samples}")
    for name in VOUCHED_FILES:
        corpus.vouched(name)
    if index.spec_sha256 != index.files[layout.RESOLVED_SPEC_NAME].sha256:
        raise CorpusInvalid(f"index.json: spec_sha256 is not the sha256 of {layout.RESOLVED_SPEC_NAME}")
    if corpus.read_rejects().num_rows != index.rejects:
        raise CorpusInvalid(f"{layout.REJECTS_NAME} has a different number of rows than index.json says")
    if count_table(corpus.table) != index.counts:
        raise CorpusInvalid("index.json: counts differ from the manifest's")
    columns = ["key", "split", "label", "parent_key", "sha256", "width", "height", "bytes", "format", "quality"]
    rows_for_checks = corpus.table.select(columns).to_pylist()
    if leakage(rows_for_checks) != index.leakage:
        raise CorpusInvalid("index.json: leakage figures differ from the manifest's")
    if bias_probe(rows_for_checks) != index.bias_probe:
        raise CorpusInvalid("index.json: bias_probe differs from the probe recomputed on the manifest")
    unlisted = unlisted_files(corpus)
    if strict and unlisted:
        raise CorpusInvalid(f"{len(unlisted)} files under {out_dir} are not in index.json, e.g. {unlisted[0]}")
    rows = corpus.rows_by_key
    orphan = next((r for r in corpus.rows if r["parent_key"] and r["parent_key"] not in rows), None)
    if orphan:
        raise CorpusInvalid(f"sample {orphan['key']}: parent_key {orphan['parent_key']!r} is not in the manifest")
    policy = corpus.policy
    sizes = {policy.for_label(label).size for label in LABELS}
    rows_per_shard: Counter[Any] = Counter(row["shard"] for row in corpus.rows)
    seen = 0
    for entry in index.shards:
        path = corpus.layout.shard(entry.path)
        if not path.is_file():
            raise CorpusInvalid(f"{entry.path}: shard is missing")
        if path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256:
            raise CorpusInvalid(f"{entry.path}: sha256 differs from index.json (the shard was altered)")
        count = 0
        try:
            for sample in corpus.iter_samples_of(entry):
                _check_sample(sample, corpus.localized, sizes)
                if sample.row["split"] != entry.split:
                    raise CorpusInvalid(
                        f"{entry.path}: sample {sample.key} is listed under split {sample.row['split']}"
                    )
                count += 1
        except CorpusInvalid:
            raise
        except CorpusError as err:  # the shard's own content is wrong: damage, not a refused folder
            raise CorpusInvalid(str(err)) from None
        listed = rows_per_shard[entry.path]
        if count != entry.count or listed != entry.count:
            raise CorpusInvalid(
                f"{entry.path}: holds {count} samples, manifest lists {listed}, index.json says {entry.count}"
            )
        seen += count
        if progress:
            progress(count)
    if seen != len(rows):
        raise CorpusInvalid(f"shards hold {seen} samples, manifest lists {len(rows)}")
    return {"shards": len(index.shards), "samples": seen, "unlisted": unlisted}

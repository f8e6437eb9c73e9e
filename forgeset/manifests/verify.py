"""`forgeset verify`: check every byte of a built corpus against its own index.json.

Checked: index.json's own content hash; the sha256 and size of the manifest, the rejects, the
resolved spec and every shard; that spec_sha256 is the hash of spec.resolved.yaml; every sample's
members, image hash, size and decoding; that each KEY.json equals its manifest row field by field;
the counts and leakage figures recomputed from the manifest. Files under OUT that the index does
not know (other than build state and other commands' outputs) are listed; `strict` fails on them.

Shards are hashed and decoded in parallel processes (`jobs`), each reading only its shard's
manifest rows; the manifest-wide checks (counts, leakage, parents, the bias probe) are reduced
from columns, never a Python dict per row. Each file is hashed once. The bias probe is refitted
on the same bounded sample finalize fitted it on (at most PROBE_SAMPLE_ROWS rows, chosen by
image hash), so a doctored probe, which could wave a corpus through the bias gate, is still
caught, at a cost that does not grow with the corpus. `hash_only` checks every byte against the
index without decoding a sample: as fast as the disk and the hash allow.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from forgeset.manifests import layout
from forgeset.manifests.annotations import AnnotationError, parse_annotation, read_annotations
from forgeset.manifests.corpus import Corpus, CorpusError, CorpusSample, IndexShard
from forgeset.manifests.index import TALLY_COLUMNS, VOUCHED_FILES, ManifestTally
from forgeset.manifests.schema import LABELS
from forgeset.manifests.shard_reader import file_sha256


class CorpusInvalid(CorpusError):
    """The first problem found; the message names the shard or sample."""


def _check_sample(sample: CorpusSample, localized: bool, sizes: set[int]) -> None:
    row, members = sample.row, sample.members
    where = f"{sample.shard}: sample {sample.key}"
    image_member = layout.image_member(row["format"])
    expected = layout.required_members(layout.sample_members([row["format"]], localized))
    if layout.required_members(set(members)) != expected:
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
    _check_annotation(sample, where)
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


def _check_annotation(sample: CorpusSample, where: str) -> None:
    """KEY.ann.json, when present, is a valid annotation of this image and the manifest counts its regions."""
    data = sample.annotation
    count = None if data is None else len(parse_annotation(data, sample.row["width"], sample.row["height"], where))
    if count != sample.row["regions"]:
        listed = sample.row["regions"]
        raise CorpusInvalid(f"{where}: {count or 0} regions in {layout.ANN_MEMBER}, the manifest says {listed}")


def _check_annotations_table(corpus: Corpus) -> None:
    """OUT/annotations.parquet (curate sync's regions, which `filter` applies), when there: every row valid."""
    path = corpus.layout.annotations
    if not path.is_file():  # none synced (or a corpus on object storage, where sync never writes)
        return
    try:
        listed = pq.read_table(path, columns=["key"])["key"].unique()
    except Exception as err:  # any parse failure is one clear error
        raise CorpusInvalid(f"{path}: not a readable annotations table ({type(err).__name__}: {err})") from None
    known: set[str] = set()
    for batch in corpus.manifest_batches(["key"]):  # only the table's keys are held, never the manifest's
        known.update(batch["key"].filter(pc.is_in(batch["key"], value_set=listed)).to_pylist())
    try:
        read_annotations(path, known)
    except AnnotationError as err:
        raise CorpusInvalid(str(err)) from None


def unlisted_files(corpus: Corpus) -> list[str]:
    """Files under OUT that index.json does not vouch for (build state and command outputs aside)."""
    known = set(VOUCHED_FILES) | {layout.INDEX_NAME} | {shard.path for shard in corpus.shards()}
    if not corpus.storage.is_local:  # object storage: one listing, no folders or links
        return [name for name in corpus.storage.list() if name not in known and not layout.is_product_path(name)]
    found = []
    for path in sorted(corpus.root.rglob("*")):
        relative = path.relative_to(corpus.root).as_posix()
        if (path.is_file() or path.is_symlink()) and relative not in known and not layout.is_product_path(relative):
            found.append(relative)
    return found


def default_jobs() -> int:
    """Worker processes verify uses by default: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_shard(corpus: Corpus, entry: IndexShard, sizes: set[int], hash_only: bool) -> int:
    """Check one shard's bytes against the index and, unless `hash_only`, every sample in it; returns its samples."""
    if not corpus.shard_exists(entry.path):
        raise CorpusInvalid(f"{entry.path}: shard is missing")
    if corpus.storage.local is not None:
        path = corpus.layout.shard(entry.path)
        altered = path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256
    else:  # streamed through fsspec in 1 MiB blocks
        storage = corpus.storage
        altered = storage.size(entry.path) != entry.bytes or storage.sha256(entry.path) != entry.sha256
    if altered:
        raise CorpusInvalid(f"{entry.path}: sha256 differs from index.json (the shard was altered)")
    listed = corpus.shard_counts.get(entry.path, 0)
    if hash_only:
        if listed != entry.count:
            raise CorpusInvalid(f"{entry.path}: manifest lists {listed} samples, index.json says {entry.count}")
        return listed
    count = 0
    try:
        for sample in corpus.iter_samples_of(entry):
            _check_sample(sample, corpus.localized, sizes)
            if sample.row["split"] != entry.split:
                raise CorpusInvalid(f"{entry.path}: sample {sample.key} is listed under split {sample.row['split']}")
            count += 1
    except CorpusInvalid:
        raise
    except CorpusError as err:  # the shard's own content is wrong: damage, not a refused folder
        raise CorpusInvalid(str(err)) from None
    if count != entry.count or listed != entry.count:
        raise CorpusInvalid(
            f"{entry.path}: holds {count} samples, manifest lists {listed}, index.json says {entry.count}"
        )
    return count


# A worker process costs seconds to start (imports): each gets at least this many shard bytes.
MIN_BYTES_PER_WORKER = 64 << 20

# A worker process's view of the corpus, set once per process by _start_worker.
_worker_corpus: Corpus | None = None


def _start_worker(corpus: Corpus) -> None:
    global _worker_corpus
    _worker_corpus = corpus


def _check_shard_in_worker(entry: IndexShard, sizes: set[int], hash_only: bool) -> int:
    if _worker_corpus is None:
        raise RuntimeError("verify worker started without its corpus")
    return _check_shard(_worker_corpus, entry, sizes, hash_only)


def _check_shards(
    corpus: Corpus, sizes: set[int], hash_only: bool, jobs: int, progress: Callable[[int], None] | None
) -> int:
    """Check every listed shard, `jobs` at a time; the first problem in shard order is raised.

    Fewer workers are started when the shards are too small to pay for their start-up.
    """
    shards = corpus.index.shards
    seen = 0
    jobs = min(jobs, len(shards), max(1, sum(entry.bytes for entry in shards) // MIN_BYTES_PER_WORKER))
    if jobs <= 1:
        for entry in shards:
            count = _check_shard(corpus, entry, sizes, hash_only)
            seen += count
            if progress:
                progress(count)
        return seen
    # spawn, not fork: the caller may hold threads (Arrow's pools, Ray) that a forked child would inherit stuck.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(corpus,)) as pool:
        futures: list[Future[int]] = [pool.submit(_check_shard_in_worker, entry, sizes, hash_only) for entry in shards]
        try:
            for future in futures:
                count = future.result()
                seen += count
                if progress:
                    progress(count)
        finally:
            for future in futures:
                future.cancel()
    return seen


def _check_index_against_spec(corpus: Corpus) -> None:
    """The index's name and image policy are the resolved spec's (readers trust the index's policy)."""
    resolved = corpus.resolved_spec()
    if resolved.get("name") != corpus.index.name:
        raise CorpusInvalid(f"index.json: name differs from {layout.RESOLVED_SPEC_NAME}'s")
    try:
        policy = type(corpus.index.image_policy).model_validate(resolved.get("image"))
    except ValueError:
        raise CorpusInvalid(f"{layout.RESOLVED_SPEC_NAME}: its image policy is not valid") from None
    if policy != corpus.index.image_policy:
        raise CorpusInvalid(f"index.json: image_policy differs from {layout.RESOLVED_SPEC_NAME}'s image policy")


def _check_croissant(corpus: Corpus) -> None:
    """croissant.json, when the corpus has one, is the metadata derived from this index (checked last:
    a shard or index problem is named by the more specific check first)."""
    if not corpus.storage.exists(layout.CROISSANT_NAME):
        return
    from forgeset.manifests.croissant import croissant_bytes

    if corpus.storage.read_bytes(layout.CROISSANT_NAME) != croissant_bytes(corpus):
        raise CorpusInvalid(f"{layout.CROISSANT_NAME} differs from the metadata of this corpus")


def verify_corpus(
    out_dir: Path | str,
    progress: Callable[[int], None] | None = None,
    strict: bool = False,
    jobs: int | None = None,
    hash_only: bool = False,
    on_total: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Re-hash every file, decode every image, check members, labels, keys, rows and counts.

    `jobs` worker processes check shards (default: every CPU); `hash_only` skips decoding samples.
    `progress(n)` is called as shards finish with their sample count, after `on_total(samples)`.
    `out_dir` is a folder or an fsspec URL (s3://...: shards are streamed, nothing is downloaded whole).
    Raises CorpusError (CorpusInvalid) naming the first file, shard or sample that is wrong;
    returns totals (shards, samples, shard bytes) and the unlisted files if all is well (`strict`:
    unlisted files are an error).
    """
    corpus = Corpus.open(out_dir)  # hashes the manifest, once
    index = corpus.index
    if corpus.manifest.rows != index.samples:
        raise CorpusInvalid(f"manifest has {corpus.manifest.rows} rows, index.json says {index.samples}")
    corpus.vouched(layout.RESOLVED_SPEC_NAME)
    if index.spec_sha256 != index.files[layout.RESOLVED_SPEC_NAME].sha256:
        raise CorpusInvalid(f"index.json: spec_sha256 is not the sha256 of {layout.RESOLVED_SPEC_NAME}")
    _check_index_against_spec(corpus)
    if corpus.read_rejects().num_rows != index.rejects:  # read_rejects hashes the rejects, once
        raise CorpusInvalid(f"{layout.REJECTS_NAME} has a different number of rows than index.json says")
    tally = ManifestTally()
    for batch in corpus.manifest_batches(list(TALLY_COLUMNS)):
        tally.add(batch)
    if tally.counts() != index.counts:
        raise CorpusInvalid("index.json: counts differ from the manifest's")
    if tally.leakage() != index.leakage:
        raise CorpusInvalid("index.json: leakage figures differ from the manifest's")
    if tally.bias_probe() != index.bias_probe:
        raise CorpusInvalid("index.json: bias_probe differs from the probe recomputed on the manifest")
    unlisted = unlisted_files(corpus)
    if strict and unlisted:
        where = corpus.storage.url
        raise CorpusInvalid(f"{len(unlisted)} files under {where} are not in index.json, e.g. {unlisted[0]}")
    _check_annotations_table(corpus)
    orphan = tally.orphan()
    if orphan is not None:
        raise CorpusInvalid(f"sample {orphan[0]}: parent_key {orphan[1]!r} is not in the manifest")
    del tally
    policy = corpus.policy
    sizes = {policy.for_label(label).size for label in LABELS}
    if on_total:
        on_total(index.samples)
    seen = _check_shards(corpus, sizes, hash_only, jobs or default_jobs(), progress)
    if seen != corpus.manifest.rows:
        raise CorpusInvalid(f"shards hold {seen} samples, manifest lists {corpus.manifest.rows}")
    _check_croissant(corpus)
    shard_bytes = sum(entry.bytes for entry in index.shards)
    return {"shards": len(index.shards), "samples": seen, "bytes": shard_bytes, "unlisted": unlisted}

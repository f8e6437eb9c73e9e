"""Croissant metadata (croissant.json) of a corpus: its files and the record set of the manifest.

Croissant (MLCommons) is the JSON-LD format dataset search engines, the Hub and loaders such as
`mlcroissant` read. The distribution lists manifest.parquet and every shard as file objects (with
their sha256 from index.json); the record set `samples` has one field per manifest column, read
from manifest.parquet, so `mlcroissant.Dataset(jsonld).records("samples")` yields the manifest.
Built with mlcroissant's own classes, so what is written is what mlcroissant validates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeset.manifests import layout
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.schema import MANIFEST_SCHEMA

RECORD_SET = "samples"
MANIFEST_FILE_ID = "manifest"
PARQUET_TYPE = "application/x-parquet"
TAR_TYPE = "application/x-tar"
_DATA_TYPES = {"string": "TEXT", "int64": "INTEGER", "double": "FLOAT"}  # mlcroissant.DataType members
DEFAULT_DESCRIPTION = "A corpus for detecting AI-generated and manipulated images, built with forgeset."


def croissant_metadata(
    corpus: Corpus, *, url: str | None = None, shard_prefix: str = "", description: str | None = None
) -> dict[str, Any]:
    """The Croissant JSON-LD of `corpus` (a dict; `write_croissant` writes it).

    `url` is the dataset's home page (e.g. the Hub repo); `shard_prefix` is prepended to shard
    paths (a release keeps them under data/). `description` defaults to the spec's description.
    """
    import mlcroissant as mlc

    index = corpus.index
    spec = corpus.resolved_spec()
    license_value = spec.get("license")
    files: list[Any] = [
        mlc.FileObject(
            id=MANIFEST_FILE_ID,
            name=layout.MANIFEST_NAME,
            content_url=layout.MANIFEST_NAME,
            encoding_formats=[PARQUET_TYPE],
            sha256=index.files[layout.MANIFEST_NAME].sha256,
            content_size=f"{index.files[layout.MANIFEST_NAME].bytes} B",
            description="One row per sample: the fields of KEY.json with real nulls, and the sample's shard.",
        )
    ]
    files += [
        mlc.FileObject(
            id=f"shard-{shard.path}",
            name=f"{shard_prefix}{shard.path}",
            content_url=f"{shard_prefix}{shard.path}",
            encoding_formats=[TAR_TYPE],
            sha256=shard.sha256,
            content_size=f"{shard.bytes} B",
            description=f"WebDataset shard of split {shard.split}: {shard.count} samples.",
        )
        for shard in corpus.shards()
    ]
    fields = [
        mlc.Field(
            id=f"{RECORD_SET}/{field.name}",
            name=field.name,
            data_types=[getattr(mlc.DataType, _DATA_TYPES[str(field.type)])],
            source=mlc.Source(file_object=MANIFEST_FILE_ID, extract=mlc.Extract(column=field.name)),
        )
        for field in MANIFEST_SCHEMA
    ]
    metadata = mlc.Metadata(
        name=corpus.name,
        description=description or str(spec.get("description") or DEFAULT_DESCRIPTION),
        url=url,
        license=[str(license_value)] if license_value else None,
        version="1.0.0",
        cite_as=f"{corpus.name}, built with forgeset from a spec with sha256 {index.spec_sha256}",
        distribution=files,
        record_sets=[
            mlc.RecordSet(
                id=RECORD_SET,
                name=RECORD_SET,
                description="The manifest: one record per sample (label, kind, generator recipe, lineage, image).",
                key=f"{RECORD_SET}/key",
                fields=fields,
            )
        ],
    )
    data: dict[str, Any] = metadata.to_json()
    return data


def croissant_bytes(corpus: Corpus, **options: Any) -> bytes:
    """`croissant_metadata(corpus, **options)` as the bytes of croissant.json (deterministic)."""
    return json.dumps(croissant_metadata(corpus, **options), indent=2, ensure_ascii=False).encode("utf-8")


def write_croissant(corpus: Corpus, target: Path, **options: Any) -> Path:
    """Write `croissant_metadata(corpus, **options)` as `target`/croissant.json; return its path."""
    path = target / layout.CROISSANT_NAME
    path.unlink(missing_ok=True)  # never write through a hard link into another folder's copy
    path.write_bytes(croissant_bytes(corpus, **options))
    return path

"""Batch prediction: many photos and .zip archives of photos in, one result per file out.

    results = predict_batch(predictor, ["a.jpg", "shoot.zip", ("upload.png", data)], progress=callback)
    fer.record.write_csv(results, "out.csv")   # or results_json(results): the CLI's and the app's outputs

Archives are read in memory, member by member, and never extracted to disk, so a member name like
`../../etc/passwd` is only ever a label. Zip bombs are stopped by the caps below, checked on the
sizes the archive declares before anything is decompressed and again on the bytes really read.
Nested archives, encrypted and damaged members are reported, directory entries skipped. Every
input gives at least one result: faces, or an `error` message saying what went wrong.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fer.errors import FerError, ImageError
from fer.images import MAX_FILE_BYTES
from fer.predict import PhotoResult, Predictor

MAX_ZIP_MEMBERS = 1_000  # files in one archive (directory entries not counted)
MAX_ZIP_TOTAL_BYTES = 1024 * 2**20  # 1 GB uncompressed in one archive: members are read one at a time
MAX_ZIP_MEMBER_BYTES = MAX_FILE_BYTES  # one member, uncompressed: the same cap as a single upload
# The central directory is parsed in full when a zip is opened; a crafted one of millions of tiny
# entries would exhaust memory before MAX_ZIP_MEMBERS could be checked, so its size is checked first.
MAX_ZIP_DIRECTORY_BYTES = MAX_ZIP_MEMBERS * 1024
ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}
# Packaging debris from macOS and Windows zip tools: not photos, not worth a report line.
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_ARCHIVE_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"Rar!", b"7z\xbc\xaf", b"BZh", b"\xfd7zXZ")

Progress = Callable[[int, int, str], None]  # (files done, files in total, name of the file just done)
Source = str | os.PathLike | tuple[str, bytes]  # a path, or (name, bytes) for an upload


@dataclass
class _Item:
    """One file to predict: `fetch` gives its bytes or path (read when its turn comes); `error` when skipped."""

    name: str
    fetch: Callable[[], bytes | Path] | None = None
    error: str | None = None


def is_archive_name(name: str) -> bool:
    return Path(name).suffix.lower() in ARCHIVE_SUFFIXES


def predict_batch(
    predictor: Predictor,
    sources: Iterable[Source],
    progress: Progress | None = None,
    detect: bool = True,
    keep: Callable[[PhotoResult], Any] | None = None,
) -> list:
    """Predict every photo of `sources`, expanding .zip archives; never raises for a bad file or archive.

    Results come in input order (archive members in archive order), one per file, named like
    `shoot.zip/day1/img.jpg` for archive members. `progress(done, total, name)` is called after each.
    `keep(result)`, when given, is what is kept of each result instead of the result itself, made as
    soon as the result is: e.g. a copy without the full-size photo, so that a batch of hundreds of
    photos never holds every decoded photo at once.
    """
    with _ArchiveStack() as archives:
        items = [item for source in sources for item in archives.expand(source)]
        results = []
        for done, item in enumerate(items, start=1):
            result = _predict_item(predictor, item, detect)
            results.append(keep(result) if keep is not None else result)
            if progress is not None:
                progress(done, len(items), item.name)
    return results


def _predict_item(predictor: Predictor, item: _Item, detect: bool) -> PhotoResult:
    if item.error is not None:
        return PhotoResult(file=item.name, error=item.error)
    try:
        data = item.fetch()
    except FerError as error:
        return PhotoResult(file=item.name, error=str(error))
    return predictor.predict(data, name=item.name, detect=detect)


class _ArchiveStack:
    """Expands sources into items; keeps the zips open until the batch is done, then closes them."""

    def __init__(self):
        self._open: list[tuple[zipfile.ZipFile, io.IOBase]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for archive, stream in self._open:
            archive.close()
            stream.close()  # zipfile leaves a stream it was given open

    def expand(self, source: Source) -> Iterator[_Item]:
        if isinstance(source, tuple):
            name, data = source
            if not is_archive_name(name):
                yield _Item(name, fetch=partial(bytes, data))
                return
            opener = partial(io.BytesIO, data)
        else:
            path = Path(source)
            name = path.name
            if not is_archive_name(name):
                yield _Item(name, fetch=partial(Path, path))  # load_image reads the path (size-checked first)
                return
            opener = partial(open, path, "rb")
        if Path(name).suffix.lower() != ".zip":
            yield _Item(
                name,
                error=f"{name} is an archive type that is not read here; use a .zip archive or the photos themselves.",
            )
            return
        try:
            stream = opener()
        except OSError as error:
            yield _Item(name, error=f"{name} could not be read ({error.strerror or error}); check the path.")
            return
        try:
            archive = _open_zip(stream, name)
        except FerError as error:
            stream.close()
            yield _Item(name, error=str(error))
            return
        self._open.append((archive, stream))
        yield from _zip_items(archive, name)


def _open_zip(stream: io.IOBase, name: str) -> zipfile.ZipFile:
    try:
        _check_directory_size(stream, name)
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError) as error:
        raise ImageError(f"{name} is not a valid zip archive ({error}); re-create it and try again.") from error


def _check_directory_size(stream, name: str) -> None:
    """Refuse a zip whose central directory is too big to parse safely (read from its end records)."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - 22 - 65_535))  # the end record is within the last 64 KB + 22 bytes
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # not a zip: zipfile says so with its own message
    directory_bytes = struct.unpack("<I", tail[at + 12 : at + 16])[0]
    locator = tail[at - 20 : at] if at >= 20 else b""
    if locator.startswith(b"PK\x06\x07"):  # zip64: zipfile takes the sizes from the zip64 end record
        record = tail[at - 20 - 56 : at - 20] if at >= 76 else b""
        if not record.startswith(b"PK\x06\x06"):
            return  # zipfile rejects a broken zip64 record itself
        directory_bytes = struct.unpack("<Q", record[40:48])[0]
    if directory_bytes > size:  # zipfile would parse whatever follows, however many entries it holds
        raise ImageError(f"{name} is not a valid zip archive (its directory is damaged); re-create it and try again.")
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise ImageError(
            f"{name} lists more entries than the {MAX_ZIP_MEMBERS} files an archive may hold; split it into smaller zips."
        )
    stream.seek(0)


def _zip_items(archive: zipfile.ZipFile, zip_name: str) -> Iterator[_Item]:
    members = [info for info in archive.infolist() if not info.is_dir() and not _is_junk(info.filename)]
    if len(members) > MAX_ZIP_MEMBERS:
        yield _Item(
            zip_name,
            error=f"{zip_name} holds {len(members)} files; the limit is {MAX_ZIP_MEMBERS}. Split it into smaller zips.",
        )
        return
    declared = sum(info.file_size for info in members)
    if declared > MAX_ZIP_TOTAL_BYTES:
        yield _Item(
            zip_name,
            error=f"{zip_name} would expand to {declared / 2**20:,.0f} MB; the limit is {MAX_ZIP_TOTAL_BYTES // 2**20:,} MB. "
            "Split it into smaller zips.",
        )
        return
    if not members:
        yield _Item(zip_name, error=f"{zip_name} holds no files; add photos to it.")
        return
    budget = _ByteBudget(MAX_ZIP_TOTAL_BYTES)
    for info in members:
        label = f"{zip_name}/{info.filename}"
        if is_archive_name(info.filename):
            yield _Item(
                label,
                error=f"{label} is an archive inside the archive and was ignored; add its photos to the zip directly.",
            )
        elif info.flag_bits & 0x1:
            yield _Item(label, error=f"{label} is encrypted and was skipped; zip the photos without a password.")
        elif info.file_size > MAX_ZIP_MEMBER_BYTES:
            yield _Item(
                label,
                error=f"{label} is larger than {MAX_ZIP_MEMBER_BYTES // 2**20} MB once unpacked; use a smaller image.",
            )
        else:
            yield _Item(label, fetch=partial(_read_member, archive, info, label, budget))


def _is_junk(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or parts[-1] in JUNK_NAMES or parts[-1].startswith("._")


class _ByteBudget:
    """Bytes really decompressed from one archive, whatever its headers declare."""

    def __init__(self, limit: int):
        self.left = limit


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: _ByteBudget) -> bytes:
    total_limit = f"{MAX_ZIP_TOTAL_BYTES // 2**20:,} MB"
    if budget.left <= 0:
        raise ImageError(
            f"{label} was skipped: the archive already unpacked to its {total_limit} limit; split it into smaller zips."
        )
    try:
        with archive.open(info) as member:
            data = member.read(MAX_ZIP_MEMBER_BYTES + 1)  # real bytes, whatever the headers say
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ImageError(f"{label} is damaged inside the archive ({error}); re-create the zip.") from error
    except NotImplementedError as error:  # e.g. an unsupported compression method
        raise ImageError(
            f"{label} uses a compression this reader does not support ({error}); re-zip it with standard (deflate) compression."
        ) from error
    except RuntimeError as error:  # zipfile's way of saying "encrypted"
        raise ImageError(f"{label} could not be read ({error}); zip the photos without a password.") from error
    budget.left -= len(data)
    if len(data) > MAX_ZIP_MEMBER_BYTES:
        raise ImageError(
            f"{label} is larger than {MAX_ZIP_MEMBER_BYTES // 2**20} MB once unpacked; use a smaller image."
        )
    if budget.left < 0:
        raise ImageError(
            f"{label} was skipped: the archive unpacked to more than its {total_limit} limit; split it into smaller zips."
        )
    if data.startswith(_ARCHIVE_SIGNATURES):
        raise ImageError(
            f"{label} is an archive inside the archive and was ignored; add its photos to the zip directly."
        )
    return data

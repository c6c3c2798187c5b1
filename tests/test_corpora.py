"""Tests for seqkit.data and the built-in corpora (seqkit_corpora)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from seqkit.data import cache_dir, locate, read_text_file, sha1_of, strip_gutenberg
from seqkit.errors import ConfigError, DataError
from seqkit.plugins import build_registry
from seqkit_corpora.builtin import Lyrics, Shakespeare, TimeMachine
from seqkit_corpora.textfile import TextFile

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the user's cache or data folder."""
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEQKIT_DATA", raising=False)


@pytest.fixture
def shared_data(monkeypatch):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    monkeypatch.setenv("SEQKIT_DATA", str(SHARED))
    return SHARED


@pytest.fixture
def http_dir(tmp_path):
    """A folder served by an HTTP server on 127.0.0.1 (random port); yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the real corpora -------------------------------------------------------------------------

def test_timemachine_counts(shared_data):
    text = TimeMachine().read()
    assert len(text) == 170_580
    assert len(set(text)) == 27
    assert len(set(text) | {"<unk>"}) == 28
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert text.startswith("the time machine by h g wells")
    assert TimeMachine.reserve_unk and TimeMachine.default_prefix == "time traveller"


def test_timemachine_normalize_none_is_raw(shared_data):
    raw = TimeMachine(normalize="none").read()
    assert raw == (SHARED / "timemachine.txt").read_text(encoding="utf-8")
    assert raw.startswith("The Time Machine, by H. G. Wells")


def test_lyrics_counts(shared_data):
    text = Lyrics().read()
    assert len(text) == 63_282
    assert len(set(text[:10_000])) == 1_027
    assert "\n" not in text and "\r" not in text
    raw = Lyrics(normalize="none").read()
    assert len(raw) == len(text) and "\n" in raw
    assert Lyrics.default_prefix == "分开" and not Lyrics.reserve_unk


def test_shakespeare_counts(shared_data):
    text = Shakespeare().read()
    assert len(text) == 1_115_394
    assert len(set(text)) == 65
    assert Shakespeare(normalize="none").read() == text
    assert Shakespeare.default_val_fraction == 0.1 and Shakespeare.default_prefix == "ROMEO:"


def test_data_dir_option_is_searched_first(monkeypatch, tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    # A tampered copy in $SEQKIT_DATA is never reached: --data-dir wins.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tinyshakespeare.txt").write_text("tampered", encoding="utf-8")
    monkeypatch.setenv("SEQKIT_DATA", str(bad))
    text = Shakespeare(data_dir=SHARED).read()
    assert len(text) == 1_115_394


def test_sha1_of_matches_shared_sums():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    for line in (SHARED / "SHA1SUMS").read_text().splitlines():
        digest, name = line.split()
        assert sha1_of(SHARED / name) == digest


@pytest.mark.parametrize("corpus", [TimeMachine, Lyrics, Shakespeare])
def test_tampered_copy_is_rejected(corpus, tmp_path):
    (tmp_path / corpus.filename).write_bytes(b"not the real corpus\n")
    with pytest.raises(DataError) as info:
        corpus(data_dir=tmp_path).read()
    msg = str(info.value)
    assert str(tmp_path / corpus.filename) in msg
    assert corpus.sha1 in msg and corpus.url in msg


def test_tampered_copy_in_cache_is_rejected(tmp_path):
    cache = cache_dir()
    cache.mkdir(parents=True)
    (cache / "timemachine.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="expected 090b5e7e"):
        TimeMachine().read()


def test_corrupt_zip_is_a_data_error(tmp_path, monkeypatch):
    bad = tmp_path / "jaychou_lyrics.txt.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    monkeypatch.setattr(Lyrics, "sha1", sha1_of(bad))
    with pytest.raises(DataError, match="not a readable zip"):
        Lyrics(data_dir=tmp_path).read()


def test_zip_without_member_is_a_data_error(tmp_path, monkeypatch):
    path = tmp_path / "jaychou_lyrics.txt.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other.txt", "x")
    monkeypatch.setattr(Lyrics, "sha1", sha1_of(path))
    with pytest.raises(DataError, match="has no jaychou_lyrics.txt"):
        Lyrics(data_dir=tmp_path).read()


def test_empty_after_normalisation_is_a_data_error(tmp_path, monkeypatch):
    path = tmp_path / "timemachine.txt"
    path.write_text("1234 ... !!!\n", encoding="utf-8")
    monkeypatch.setattr(TimeMachine, "sha1", sha1_of(path))
    with pytest.raises(DataError, match="empty"):
        TimeMachine(data_dir=tmp_path).read()


@pytest.mark.parametrize("corpus", ["timemachine", "lyrics", "shakespeare", "file"])
def test_unknown_normalize_lists_choices(corpus):
    with pytest.raises(ConfigError, match="unknown --normalize 'lower'; choose one of: default, .*none"):
        build_registry().create("corpus", corpus, normalize="lower")


# --- locate: offline and download -------------------------------------------------------------

def test_offline_message_names_file_places_and_url(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/timemachine.txt"
    monkeypatch.setattr(TimeMachine, "url", url)
    with pytest.raises(DataError) as info:
        TimeMachine(data_dir=tmp_path / "mine").read()
    msg = str(info.value)
    assert "not available offline" in msg
    assert "timemachine.txt" in msg and url in msg
    assert "SEQKIT_DATA" in msg and str(tmp_path / "mine") in msg
    assert str(cache_dir() / "timemachine.txt") in msg
    assert not (cache_dir() / "timemachine.txt").exists()


def test_download_into_cache(http_dir):
    root, base = http_dir
    payload = "a small corpus\n" * 100
    (root / "small.txt").write_text(payload, encoding="utf-8")
    digest = hashlib.sha1(payload.encode()).hexdigest()
    path = locate("small.txt", f"{base}/small.txt", digest, None)
    assert path == cache_dir() / "small.txt"
    assert path.read_text(encoding="utf-8") == payload
    assert sorted(p.name for p in cache_dir().iterdir()) == ["small.txt"]
    # Second call finds the cached copy (the server's file is gone).
    (root / "small.txt").unlink()
    assert locate("small.txt", f"{base}/small.txt", digest, None) == path


def test_download_with_wrong_sha1_leaves_nothing(http_dir):
    root, base = http_dir
    (root / "small.txt").write_text("changed upstream\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        locate("small.txt", f"{base}/small.txt", "0" * 40, None)
    msg = str(info.value)
    assert f"{base}/small.txt" in msg and "0" * 40 in msg
    assert list(cache_dir().iterdir()) == []


def test_download_http_error_is_offline_error(http_dir):
    _, base = http_dir
    with pytest.raises(DataError, match="HTTP 404"):
        locate("missing.txt", f"{base}/missing.txt", "0" * 40, None)
    assert list(cache_dir().iterdir()) == []


def test_corpus_downloads_through_its_url(http_dir, monkeypatch):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    root, base = http_dir
    shutil.copy(SHARED / "jaychou_lyrics.txt.zip", root / "lyrics.zip")
    monkeypatch.setattr(Lyrics, "url", f"{base}/lyrics.zip")
    assert len(Lyrics().read()) == 63_282
    assert (cache_dir() / "jaychou_lyrics.txt.zip").is_file()


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SEQKIT_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "seqkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "seqkit"


# --- read_text_file, strip_gutenberg and the file corpus -------------------------------------

def read_file(path: Path, **options) -> str:
    return TextFile(corpus_file=path, **options).read()


def test_file_corpus_reads_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world\nsecond line\n", encoding="utf-8")
    assert read_file(path) == "hello world\nsecond line\n"
    assert TextFile.default_prefix == "" and not TextFile.reserve_unk


def test_file_corpus_drops_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert read_file(path) == "hello"
    assert read_text_file(path, "utf-8-sig") == "hello"
    path.write_bytes("hello".encode("utf-16"))
    assert read_file(path, encoding="utf-16") == "hello"


def test_file_corpus_latin1(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème\n".encode("latin-1"))
    assert read_file(path, encoding="latin-1") == "café crème\n"


def test_undecodable_names_offset_and_option(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ab\ncaf\xe9\n")
    with pytest.raises(DataError) as info:
        read_file(path)
    msg = str(info.value)
    assert str(path) in msg and "byte offset 6" in msg and "line 2" in msg
    assert "--encoding" in msg and "latin-1" in msg


def test_unknown_encoding(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unknown text encoding 'klingon'"):
        read_file(path, encoding="klingon")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        read_file(tmp_path / "nope.txt")
    assert "nope.txt" in str(info.value)
    with pytest.raises(DataError, match="is a folder"):
        read_text_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", b"\xef\xbb\xbf\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="is empty"):
        read_file(path)


def test_file_corpus_needs_path():
    with pytest.raises(DataError, match="--corpus-file PATH"):
        TextFile().read()


GUTENBERG = (
    "The Project Gutenberg eBook of Something\r\n"
    "Licence blah\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\r\n"
    "Chapter 1\r\n"
    "It was a dark night.\r\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\r\n"
    "More licence\r\n"
)


def test_strip_gutenberg():
    assert strip_gutenberg(GUTENBERG) == "Chapter 1\r\nIt was a dark night.\r\n"
    lower = GUTENBERG.replace("START OF THE", "start of this").replace("END OF THE", "End of the")
    assert strip_gutenberg(lower) == "Chapter 1\r\nIt was a dark night.\r\n"
    assert strip_gutenberg("no markers\n*** not a start\n") == "no markers\n*** not a start\n"
    assert strip_gutenberg("head\n*** START OF X\nbody\n") == "body\n"


def test_file_corpus_strips_gutenberg_unless_none(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(GUTENBERG.encode("utf-8"))
    assert read_file(path) == "Chapter 1\r\nIt was a dark night.\r\n"
    assert read_file(path, normalize="none") == GUTENBERG


def test_file_corpus_gutenberg_with_empty_body(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("header\n*** START OF X ***\n\n*** END OF X ***\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        read_file(path)


# --- registry ---------------------------------------------------------------------------------

def test_registry_names_and_metadata():
    registry = build_registry()
    assert registry.names("corpus") == ["file", "lyrics", "shakespeare", "timemachine"]
    assert registry.get("corpus", "timemachine") is TimeMachine
    assert registry.component("corpus", "shakespeare").plugin == "corpora"
    assert TimeMachine.source == TimeMachine.url and TextFile.source == "user file"
    for name in registry.names("corpus"):
        assert registry.component("corpus", name).description

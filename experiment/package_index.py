"""Where `pip install` gets packages from, read from pip's own configuration.

The suite fetches its pinned data archives from the same places as `pip install` (index URLs,
find-links, trusted hosts, certificates, proxy), so a machine behind a mirror or a proxy needs no
setting of its own. pip's settings (its config files and PIP_* variables) are read with
`pip config list`, whose output format has not changed since pip 10: pip itself never downloads
anything here, so which pip version the venv has does not matter. Finding the file on an index
(PEP 503/691 pages, find-links folders) is left to `unearth`; experiment/downloads.py fetches it.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import ssl
import subprocess
import sys

from unearth import PackageFinder
from unearth.auth import MultiDomainBasicAuth
from unearth.fetchers import PyPIClient

PYPI = "https://pypi.org/simple"
# pip's own default, in seconds.
PIP_TIMEOUT = 15.0
# Later sections override earlier ones, as in pip: [global], then [install], then PIP_* variables.
SECTIONS = ("global", "install", ":env:")


class PipConfigError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    index_urls: tuple[str, ...] = (PYPI,)
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None  # CA bundle (file or folder) replacing the default trust store
    client_cert: str | None = None  # one PEM file holding the client's key and certificate
    proxy: str | None = None  # besides HTTP(S)_PROXY / NO_PROXY, which are honoured too
    timeout: float = PIP_TIMEOUT

    @classmethod
    def from_pip_options(cls, options: dict[str, str]) -> IndexSettings:
        """Settings from pip's option names (as in pip.conf), values as pip stores them."""
        if _true(options.get("no-index", "no")):
            index_urls = ()
        else:
            index_urls = (options.get("index-url", PYPI), *options.get("extra-index-url", "").split())
        timeout = options.get("timeout")
        return cls(
            index_urls=index_urls,
            find_links=tuple(options.get("find-links", "").split()),
            trusted_hosts=tuple(options.get("trusted-host", "").split()),
            cert=options.get("cert") or None,
            client_cert=options.get("client-cert") or None,
            proxy=options.get("proxy") or None,
            timeout=float(timeout) if timeout else PIP_TIMEOUT,
        )


def pip_options() -> dict[str, str]:
    """pip's effective settings for `pip install`, keyed by option name (`index-url`, ...)."""
    command = [sys.executable, "-m", "pip", "config", "list"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise PipConfigError(f"`{' '.join(command)}` failed, so where to download from is unknown:\n{result.stderr[-2000:]}")
    by_section: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.partition(".")
        if section in by_section and value:
            by_section[section][_option_name(name)] = ast.literal_eval(value)  # pip prints repr()
    return {name: value for section in SECTIONS for name, value in by_section[section].items()}


def pip_settings() -> IndexSettings:
    return IndexSettings.from_pip_options(pip_options())


def client(settings: IndexSettings) -> PyPIClient:
    """An HTTP client set up as pip's: certificates, proxy, trusted hosts, timeout, credentials."""
    session = PyPIClient(
        # Known gap: unearth sends a trusted host's requests past any proxy.
        trusted_hosts=settings.trusted_hosts,
        verify=_ssl_context(settings),
        proxy=settings.proxy,
        timeout=settings.timeout,
    )
    # Credentials in an index URL (https://user:token@host/simple) apply to its files too; a
    # job has no terminal, so never prompt for them.
    session.auth = MultiDomainBasicAuth(prompting=False, index_urls=settings.index_urls)
    return session


def finders(settings: IndexSettings, session: PyPIClient) -> list[tuple[str, PackageFinder]]:
    """One unearth finder per place pip would look, in pip's order: the indexes, then find-links.

    One per place, so that an index that cannot be reached can be skipped, as pip skips it.
    ignore_compatibility: the archives are data, never installed, so a wheel or an sdist for
    another Python or platform is as good as any."""
    places = [(url, {"index_urls": [url]}) for url in settings.index_urls]
    for location in settings.find_links:
        if "://" in location or os.path.exists(location):
            places.append((location, {"find_links": [location]}))
        else:  # pip ignores these too, with the same warning
            print(f"find-links location {location} is ignored: it is neither a file nor a directory", flush=True)
    return [(place, PackageFinder(session=session, ignore_compatibility=True, **where)) for place, where in places]


def _ssl_context(settings: IndexSettings) -> ssl.SSLContext | bool:
    if settings.cert is None and settings.client_cert is None:
        return True  # the system trust store, as pip >= 24.2 uses by default
    if settings.cert is None:
        context = ssl.create_default_context()
    elif os.path.isdir(settings.cert):
        context = ssl.create_default_context(capath=settings.cert)
    else:
        context = ssl.create_default_context(cafile=settings.cert)
    if settings.client_cert:
        context.load_cert_chain(settings.client_cert)
    return context


def _option_name(name: str) -> str:
    """pip's normalisation: INDEX_URL, index_url and --index-url all mean index-url, and
    default-timeout is another name of timeout."""
    name = name.lower().replace("_", "-").removeprefix("--")
    return "timeout" if name == "default-timeout" else name


def _true(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on", "y", "t"}

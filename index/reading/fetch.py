"""Fetch: get a web page, PDF or feed by URL, safely, for a bot that fetches what strangers send it.

The rules, each one tested (``tests/test_fetch.py``):

- only ``http`` and ``https``; no credentials in the URL;
- the host is resolved once per hop, every address it resolves to must be a
  public one (no loopback, private, link-local, multicast, reserved or shared
  address, IPv4 inside IPv6 included), and the connection goes to exactly the
  address that was checked, so a DNS answer that changes between the check and
  the connection (DNS rebinding) cannot redirect it; TLS still verifies the
  certificate for the host name (SNI), because only the TCP connection is pinned;
- at most ``max_redirects`` redirects, each hop checked like the first;
- connect and read time-outs and a deadline for the whole transfer;
- a size cap enforced while streaming (and on ``Content-Length`` before it);
- only HTML, XHTML, plain text, PDF and feed content types;
- a User-Agent that names citebot; conditional requests (ETag, Last-Modified).

``CitebotError`` subclasses carry every failure as one line naming the URL and
the reason; ``allow_private`` lifts the address rule (tests, intranets).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx

from index.errors import FetchError, FetchStatusError
from index.reading.article import Article, article_from_cleaned, megabytes
from index.reading.ingest import article_from_html, decode, is_pdf

#: A function from (host, port) to the IP addresses it resolves to; tests inject one.
Resolver = Callable[[str, int], list[str]]

MAX_FETCH_BYTES = 10 * 1024 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml")
ARTICLE_TYPES = (*HTML_TYPES, "text/plain", "application/pdf")
ALLOWED_TYPES = ARTICLE_TYPES + FEED_TYPES
_ACCEPT = (
    "text/html,application/xhtml+xml,application/pdf,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/plain;q=0.8"
)
#: A fetched page whose story has fewer words than this is not an article (a paywall stub, a login page).
MIN_ARTICLE_WORDS = 40
_PAYWALL = (
    "subscribe to continue",
    "subscribe to read",
    "to continue reading",
    "already a subscriber",
    "sign in to read",
    "subscribers only",
    "for subscribers",
    "log in to continue",
)


#: Schemes that name something other than a file even without ``//`` (``file:/etc/passwd``, ``mailto:x@y``).
_BARE_SCHEMES = frozenset(
    {"file", "ftp", "ftps", "sftp", "gopher", "data", "javascript", "mailto", "news", "nntp", "telnet", "ldap", "smb"}
    | {"ws", "wss", "feed", "about", "blob", "view-source", "ssh", "scp", "tftp", "dict", "irc", "git", "jar"}
)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]+):(//)?", re.IGNORECASE)
#: What citebot fetches; every other scheme is refused as unsupported.
WEB_SCHEMES = ("http", "https")
#: Messages show at most this many characters of a URL (the middle is cut).
URL_SHOWN = 100


def url_scheme(text: str) -> str | None:
    """Return the lower-case scheme when ``text`` is a URL (``x://...``, or a known scheme as ``file:``), else ``None``.

    This is the one rule for "is it a URL or a file name": a path such as ``notes.txt`` or ``C:\\x`` has no scheme.
    """
    match = _SCHEME.match(text.strip())
    if match is None:
        return None
    scheme = match.group(1).lower()
    return scheme if match.group(2) or scheme in _BARE_SCHEMES else None


def is_url(text: str) -> bool:
    """Return whether ``text`` names a URL of any scheme (then it is fetched or refused, never read as a file)."""
    return url_scheme(text) is not None


def is_web_url(text: str) -> bool:
    """Return whether ``text`` is an ``http://`` or ``https://`` URL, the only kind citebot fetches."""
    return url_scheme(text) in WEB_SCHEMES


def short_url(url: str, limit: int = URL_SHOWN) -> str:
    """Return ``url`` cut in the middle with an ellipsis when it is longer than ``limit`` characters, for messages."""
    url = url.strip()
    if len(url) <= limit:
        return url
    head = (limit - 1) * 2 // 3
    return f"{url[:head]}…{url[len(url) - (limit - 1 - head) :]}"


def _user_agent() -> str:
    try:
        version = metadata.version("citebot")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"citebot/{version} (article reader for a question-answering bot; one request per article)"


@dataclass(frozen=True)
class FetchConfig:
    """How URLs are fetched: time-outs, size cap, redirects and the address rule.

    Attributes:
        connect_timeout: seconds to open the connection (TLS included).
        read_timeout: seconds to wait for each piece of the response.
        total_timeout: seconds for the whole transfer, however slowly the server trickles.
        max_bytes: the size cap of a response body, enforced while it streams in.
        max_redirects: redirects followed at most; each hop is checked like the first.
        allow_private: lift the address rule (loopback, private, link-local... allowed): tests, intranets.
        allow_networks: networks (CIDR) exempt from the address rule while it holds, e.g. ``("10.1.2.0/24",)``.
        user_agent: the User-Agent header; it names citebot.
        ca_file: a PEM file of certificate authorities to trust instead of certifi's (an intranet's own CA).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    total_timeout: float = 60.0
    max_bytes: int = MAX_FETCH_BYTES
    max_redirects: int = 5
    allow_private: bool = False
    allow_networks: tuple[str, ...] = ()
    user_agent: str = field(default_factory=_user_agent)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")
        if not 0 <= self.max_redirects <= 20:
            raise ValueError(f"max_redirects must be from 0 to 20, got {self.max_redirects}")
        for network in self.allow_networks:
            ipaddress.ip_network(network, strict=False)  # raises ValueError naming the bad network


@dataclass(frozen=True)
class Fetched:
    """A response that passed every rule.

    Attributes:
        url: the URL asked for.
        final_url: the URL after redirects (what the body came from).
        status: the HTTP status (200).
        content_type: the media type, lower case, without parameters (``text/html``).
        body: the bytes, at most ``max_bytes``, decompressed.
        etag: the ETag header, for the next conditional request.
        last_modified: the Last-Modified header, likewise.
        fetched_at: when it was fetched, ISO 8601 in UTC.
        charset: the charset the Content-Type header names, if any.
    """

    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str = ""
    charset: str | None = None

    @property
    def fingerprint(self) -> str:
        """A SHA-256 of the body: equal fingerprints mean an unchanged resource."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class NotModified:
    """The server answered 304 to a conditional request: what was fetched before still holds."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver and return its addresses, IPv4 and IPv6."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 one carries (mapped, 6to4, Teredo), if any."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    return None


def refused_reason(ip: str, config: FetchConfig) -> str | None:
    """Return why citebot will not connect to ``ip`` (``"a private address"``...), or ``None`` when it may."""
    address = ipaddress.ip_address(ip)
    if config.allow_private:
        return None
    if any(address in ipaddress.ip_network(n, strict=False) for n in config.allow_networks):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return refused_reason(str(inner), config)
    checks = (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("a non-public address", not address.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


class _DeadlineExceeded(httpcore.ReadTimeout):
    """The whole fetch (connect, headers, body, every hop) took longer than ``total_timeout``."""


def _within(deadline: float, timeout: float | None) -> float:
    """Return the time-out for one network step: ``timeout`` cut to what is left before ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read, write and TLS handshake ends by the fetch's deadline.

    httpcore's time-outs hold for one step each, so a server that sends its headers one byte every few seconds
    never trips them; this cuts each step to the time left, so the deadline covers the headers as well as the body.
    """

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most ``max_bytes``, waiting no later than the deadline."""
        try:
            return self._stream.read(max_bytes, _within(self._deadline, timeout))
        except httpcore.ReadTimeout:
            _within(self._deadline, None)  # name the deadline when it is what ran out
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write ``buffer``, waiting no later than the deadline."""
        self._stream.write(buffer, _within(self._deadline, timeout))

    def close(self) -> None:
        """Close the stream."""
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        """Upgrade to TLS, the handshake ending by the deadline too."""
        upgraded = self._stream.start_tls(ssl_context, server_hostname, _within(self._deadline, timeout))
        return _DeadlineStream(upgraded, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        """Return what the wrapped stream says."""
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """A network backend that connects to one checked IP address whatever host name the URL holds.

    httpcore still uses the URL's host for the Host header and for TLS (SNI and
    certificate checks); only the TCP connection is pinned, so nothing resolves
    the name a second time. Every step of the connection ends by ``deadline``.
    """

    def __init__(self, address: str, deadline: float) -> None:
        self._address, self._deadline = address, deadline
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        """Open the TCP connection to the pinned address (``host`` is ignored on purpose)."""
        try:
            stream = self._backend.connect_tcp(
                self._address, port, _within(self._deadline, timeout), local_address, socket_options
            )
        except httpcore.ConnectTimeout:
            _within(self._deadline, None)
            raise
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        """Refuse: citebot fetches over TCP only."""
        raise httpcore.ConnectError("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        """Sleep, as the default backend does."""
        self._backend.sleep(seconds)


def _ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Return a TLS context that verifies certificates against ``ca_file`` or certifi's authorities."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


def _check_url(url: str) -> httpx.URL:
    """Parse ``url`` and refuse what is not a plain http or https URL."""
    shown = short_url(url)
    scheme = url_scheme(url)
    if scheme is not None and scheme not in WEB_SCHEMES:
        raise FetchError(f"{shown}: unsupported URL scheme {scheme}: (only http:// and https:// URLs are fetched)")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"{shown}: not a valid URL ({str(exc)[:100]})") from None
    if parsed.scheme not in WEB_SCHEMES:
        raise FetchError(f"{shown}: only http:// and https:// URLs are fetched, not {parsed.scheme or 'this'}")
    if not parsed.host:
        raise FetchError(f"{shown}: the URL has no host")
    if parsed.userinfo:
        raise FetchError(f"{shown}: refused: the URL carries a user name or password")
    return parsed


class AddressRefused(FetchError):
    """The URL's host is (or resolves to) an address citebot does not connect to: loopback, private..."""


def check_target(url: str, config: FetchConfig | None = None, *, resolve: Resolver | None = None) -> None:
    """Check ``url``'s scheme and its host's addresses without connecting; raise what :func:`fetch` would refuse.

    Raises:
        FetchError: an unsupported scheme, an invalid URL, a host that cannot be resolved;
            :class:`AddressRefused` for a loopback, private... address.
    """
    config = config or FetchConfig()
    _pick_address(url, _check_url(url), config, resolve or system_resolver)


def _pick_address(url: str, parsed: httpx.URL, config: FetchConfig, resolve: Resolver) -> str:
    """Resolve the URL's host once, check every address, and return the one to connect to."""
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"{short_url(url)}: the host {host} cannot be resolved ({exc})") from None
    if not addresses:
        raise FetchError(f"{short_url(url)}: the host {host} has no address")
    for address in addresses:
        reason = refused_reason(address, config)
        if reason:
            raise AddressRefused(
                f"{short_url(url)}: refused address: {host} is {address}, {reason} "
                "(CITEBOT_FETCH_ALLOW_PRIVATE=1 allows it)"
            )
    return addresses[0]


def _media_type(header: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into its lower-case media type and its charset."""
    if not header:
        return None, None
    parts = [p.strip() for p in header.split(";")]
    charset = next(
        (p.split("=", 1)[1].strip("\"' ").lower() for p in parts[1:] if p.lower().startswith("charset=")), None
    )
    return parts[0].lower() or None, charset


def _overdue(url: str, config: FetchConfig) -> str:
    """Return the message for a fetch that ran past its deadline."""
    return f"{short_url(url)}: timeout (the server took more than {config.total_timeout:g} s in all to answer)"


class _Capped:
    """Collects a body chunk by chunk, decompressing gzip or deflate, and refuses it past the cap or the deadline."""

    def __init__(self, url: str, config: FetchConfig, encoding: str | None, deadline: float) -> None:
        self.url, self.config, self.deadline = url, config, deadline
        self.parts: list[bytes] = []
        self.size = 0
        encoding = (encoding or "identity").lower()
        if encoding in ("gzip", "x-gzip"):
            self._inflate: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()
        elif encoding == "identity":
            self._inflate = None
        else:
            raise FetchError(f"{short_url(url)}: the server sent an unsupported content encoding ({encoding})")

    def add(self, chunk: bytes) -> None:
        """Add a chunk, decompressed at most to the cap."""
        if time.monotonic() > self.deadline:
            raise FetchError(_overdue(self.url, self.config))
        if self._inflate is not None:
            chunk = self._inflate.decompress(chunk, self.config.max_bytes + 1 - self.size)
        self.size += len(chunk)
        if self.size > self.config.max_bytes:
            raise FetchError(f"{short_url(self.url)}: too large (more than {megabytes(self.config.max_bytes)})")
        self.parts.append(chunk)

    def body(self) -> bytes:
        """Return the whole body."""
        return b"".join(self.parts)


def fetch(
    url: str,
    config: FetchConfig | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    *,
    resolve: Resolver | None = None,
    accept: tuple[str, ...] = ALLOWED_TYPES,
) -> Fetched | NotModified:
    """Fetch ``url`` under every rule of this module and return the body, or :class:`NotModified`.

    Args:
        url: an http or https URL.
        config: the rules; the defaults refuse private addresses.
        etag, last_modified: from an earlier fetch, for a conditional request (answered by :class:`NotModified`).
        resolve: the host resolver (default: the system's); every hop resolves once through it.
        accept: the media types accepted (default: articles and feeds).

    Raises:
        FetchError: one line naming the URL and the reason (refused address, timeout, too large,
            HTTP 404, not an article, too many redirects...).
    """
    config = config or FetchConfig()
    resolve = resolve or system_resolver
    deadline = time.monotonic() + config.total_timeout
    current = url
    for hop in range(config.max_redirects + 1):
        try:
            first = hop == 0
            result = _hop(
                current,
                url,
                etag if first else None,
                last_modified if first else None,
                config,
                resolve,
                deadline,
                accept,
            )
        except FetchError as exc:
            if current != url:  # name the URL asked for, then the hop that failed
                exc.args = (f"{short_url(url)} (redirected to {exc})",)
            raise
        if not isinstance(result, str):
            return result
        current = result
    raise FetchError(f"{short_url(url)}: too many redirects (more than {config.max_redirects})")


def _hop(
    current: str,
    asked: str,
    etag: str | None,
    last_modified: str | None,
    config: FetchConfig,
    resolve: Resolver,
    deadline: float,
    accept: tuple[str, ...],
) -> Fetched | NotModified | str:
    """Make one request to ``current`` (resolved once, checked, pinned) and return its result or the next URL."""
    parsed = _check_url(current)
    address = _pick_address(current, parsed, config, resolve)
    headers = [("User-Agent", config.user_agent), ("Accept", _ACCEPT), ("Accept-Encoding", "gzip, deflate")]
    if etag:
        headers.append(("If-None-Match", etag))
    if last_modified:
        headers.append(("If-Modified-Since", last_modified))
    pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(config.ca_file), network_backend=_PinnedBackend(address, deadline), retries=0
    )
    try:
        with (
            pool,
            pool.stream("GET", str(parsed), headers=headers, extensions={"timeout": _timeouts(config)}) as response,
        ):
            return _handle(current, asked, response, config, deadline, accept)
    except httpcore.TimeoutException as exc:
        if isinstance(exc, _DeadlineExceeded) or time.monotonic() >= deadline:
            raise FetchError(_overdue(current, config)) from None
        kind = "connecting" if isinstance(exc, httpcore.ConnectTimeout) else "waiting for data"
        raise FetchError(f"{short_url(current)}: timeout ({kind} took too long)") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError, OSError) as exc:
        raise FetchError(f"{short_url(current)}: cannot connect ({exc.__class__.__name__}: {str(exc)[:100]})") from None


def _timeouts(config: FetchConfig) -> dict[str, float]:
    return {
        "connect": config.connect_timeout,
        "read": config.read_timeout,
        "write": config.read_timeout,
        "pool": config.connect_timeout,
    }


def _header(response: httpcore.Response, name: str) -> str | None:
    """Return the first header ``name`` of ``response``, decoded, or ``None``."""
    wanted = name.lower().encode()
    for key, value in response.headers:
        if key.lower() == wanted:
            return value.decode("latin-1").strip()
    return None


def _handle(
    current: str, asked: str, response: httpcore.Response, config: FetchConfig, deadline: float, accept: tuple[str, ...]
) -> Fetched | NotModified | str:
    """Turn one hop's response into a result, a FetchError, or the next URL (a redirect)."""
    status = response.status
    if status in REDIRECTS:
        location = _header(response, "Location")
        if not location:
            raise FetchError(f"{short_url(current)}: HTTP {status} redirect without a Location")
        return urljoin(current, location)
    if status == 304:
        return NotModified(asked, _header(response, "ETag"), _header(response, "Last-Modified"))
    if status != 200:
        reason = response.extensions.get("reason_phrase", b"").decode("latin-1", "replace")
        raise FetchStatusError(f"{short_url(current)}: HTTP {status}{' ' + reason if reason else ''}", status)
    media, charset = _media_type(_header(response, "Content-Type"))
    sniff = media in (None, "application/octet-stream", "binary/octet-stream")
    if not sniff and media not in accept:
        raise FetchError(f"{short_url(current)}: not an article (content type {media})")
    length = _header(response, "Content-Length")
    if length and length.isdigit() and int(length) > config.max_bytes and not _header(response, "Content-Encoding"):
        raise FetchError(
            f"{short_url(current)}: too large ({megabytes(int(length))}; the limit is {megabytes(config.max_bytes)})"
        )
    body = _Capped(current, config, _header(response, "Content-Encoding"), deadline)
    for chunk in response.iter_stream():
        body.add(chunk)
    data = body.body()
    if sniff:
        media = "application/pdf" if is_pdf(data) else None
        if media not in accept:
            raise FetchError(
                f"{short_url(current)}: not an article (no usable content type, and the bytes are not a PDF)"
            )
    return Fetched(
        url=asked,
        final_url=current,
        status=status,
        content_type=media or "",
        body=data,
        etag=_header(response, "ETag"),
        last_modified=_header(response, "Last-Modified"),
        fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        charset=charset,
    )


def _mislabelled_utf8(body: bytes, charset: str) -> bool:
    """Whether ``body`` is UTF-8 though the server named another charset (ISO-8859-1 for Arabic, say).

    Bytes that decode as UTF-8 and hold multi-byte sequences are UTF-8: text in a legacy charset
    almost never forms valid UTF-8 sequences by chance, while decoding UTF-8 as a single-byte
    charset yields mojibake that cannot be undone once stored.
    """
    name = charset.lower().replace("_", "-")
    if name.startswith(("utf-8", "utf8", "utf-16", "utf-32", "utf16", "utf32")) or body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(fetched: Fetched) -> str:
    """Decode a text response: the charset the server named (unless the bytes are UTF-8), else UTF-8 or UTF-16.

    Raises:
        ArticleError: for binary or undecodable text that is not HTML (HTML falls back to Windows-1252).
    """
    from index.errors import ArticleError

    if fetched.charset and not _mislabelled_utf8(fetched.body, fetched.charset):
        try:
            return fetched.body.decode(fetched.charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return decode(fetched.body, fetched.final_url)
    except ArticleError:
        if fetched.content_type in HTML_TYPES and b"\x00" not in fetched.body[:8192]:
            return fetched.body.decode("windows-1252", "replace")  # HTML's own default for unlabelled pages
        raise


def article_from_fetched(fetched: Fetched) -> Article:
    """Read a fetched page, text or PDF into an :class:`Article` with its URL, site, date, author and fetch time.

    Raises:
        FetchError: when the response is a feed, holds no article text (a paywall stub, a login page),
            or cannot be read (a PDF without a text layer...); one line naming the URL.
    """
    from index.errors import ArticleError
    from index.reading.clean import clean_text

    source = fetched.final_url
    host = urlsplit(source).hostname
    try:
        if fetched.content_type == "application/pdf" or is_pdf(fetched.body):
            from index.reading.pdf import article_from_pdf

            article = article_from_pdf(fetched.body, source)
            article = _with(article, url=source, site=host)
        elif fetched.content_type in FEED_TYPES:
            raise FetchError(f"{short_url(source)}: not an article but a feed (add it as a feed)")
        elif fetched.content_type in HTML_TYPES:
            html = _text(fetched)
            article = article_from_html(html, source, url=source)
            article = _with(article, site=article.site or host)
            _refuse_stub(article, html, source)
        else:
            article = article_from_cleaned(clean_text(_text(fetched)), source, url=source, site=host)
    except ArticleError as exc:
        message = str(exc)
        if message.startswith(source):
            message = short_url(source) + message[len(source) :]
        raise FetchError(message) from None
    return _with(article, fetched_at=fetched.fetched_at)


def _with(article: Article, **changes: Any) -> Article:
    from dataclasses import replace

    return replace(article, **changes)


def _refuse_stub(article: Article, html: str, source: str) -> None:
    """Refuse a page whose story is too short to be an article: a paywall stub, a login or an index page."""
    words = len(article.text.split())
    if words >= MIN_ARTICLE_WORDS:
        lowered = html.lower()
        if words >= 150 or not any(marker in lowered for marker in _PAYWALL):
            return
    paywall = any(marker in html.lower() for marker in _PAYWALL)
    why = "a paywall stub" if paywall else "a page without a story (an index, a login or an error page?)"
    raise FetchError(f"{short_url(source)}: empty extraction: only {words} words of article text; it looks like {why}")


def robots_allowed(
    url: str,
    config: FetchConfig | None = None,
    cache: dict[str, RobotFileParser] | None = None,
    *,
    resolve: Resolver | None = None,
) -> bool:
    """Return whether the site's robots.txt lets citebot fetch ``url`` (for feeds crawled by ``refresh``).

    A missing robots.txt (HTTP 4xx) allows everything; one that cannot be fetched (a time-out, HTTP 5xx,
    a refused address) allows nothing this time, as crawlers do. ``cache`` keeps one parsed file per site.
    """
    config = config or FetchConfig()
    parts = urlsplit(url)
    site = f"{parts.scheme}://{parts.netloc}"
    parser = cache.get(site) if cache is not None else None
    if parser is None:
        parser = RobotFileParser(f"{site}/robots.txt")
        try:
            got = fetch(
                f"{site}/robots.txt", _robots_config(config), resolve=resolve, accept=("text/plain", "text/html")
            )
        except FetchStatusError as exc:
            if 400 <= exc.status < 500:
                # typeshed leaves out RobotFileParser's allow_all/disallow_all (plain attributes since Python 2).
                parser.allow_all = True  # type: ignore[attr-defined]  # no robots.txt: everything is allowed
            else:
                parser.disallow_all = True  # type: ignore[attr-defined]
        except FetchError:
            parser.disallow_all = True  # type: ignore[attr-defined]  # unreachable: crawl nothing, try next run
        else:
            if isinstance(got, Fetched):
                parser.parse(got.body.decode("utf-8", "replace").splitlines())
        if cache is not None:
            cache[site] = parser
    return parser.can_fetch(config.user_agent.split("/", 1)[0], url)


def _robots_config(config: FetchConfig) -> FetchConfig:
    from dataclasses import replace

    return replace(config, max_bytes=min(config.max_bytes, 512 * 1024))

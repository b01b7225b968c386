"""Read a certificate's subject, issuer and expiry from DER, with the standard library only.

``probe`` names the certificate a TLS handshake refused. ``ssl`` only decodes certificates it
has verified, and carto-proxy needs no extra dependency to run, so this reads the few fields
it shows straight from the DER (X.509, RFC 5280 §4.1). Anything unexpected gives ``None``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

__all__ = ["CertificateInfo", "certificate_info"]

_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_EXPLICIT_0, _EXPLICIT_3 = 0xA0, 0xA3
_OCTETS = 0x04
_SAN = b"\x55\x1d\x11"  # 2.5.29.17
_DNS_NAME, _IP_ADDRESS = 0x82, 0x87  # GeneralName [2] dNSName, [7] iPAddress
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}
_TIMES = {0x17, 0x18}  # UTCTime, GeneralizedTime
_NAMES = {
    b"\x55\x04\x03": "CN",
    b"\x55\x04\x0a": "O",
    b"\x55\x04\x0b": "OU",
    b"\x55\x04\x06": "C",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """What ``probe`` shows of a certificate."""

    subject: str
    issuer: str
    not_after: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    sha256: str


class _Malformed(Exception):
    pass


def certificate_info(der: bytes) -> CertificateInfo | None:
    """Return the subject, issuer, expiry and SHA-256 fingerprint of a DER certificate."""
    try:
        tbs = _children(der, *_one(der, 0, _SEQUENCE))[0]
        fields = _children(der, tbs[1], tbs[2])
        if fields and fields[0][0] == _EXPLICIT_0:
            fields = fields[1:]  # the optional version
        _serial, _algorithm, issuer, validity, subject = fields[:5]
        times = _children(der, validity[1], validity[2])
        not_after = der[times[1][1] : times[1][2]].decode("ascii") if len(times) > 1 else ""
        extensions = [f for f in fields[6:] if f[0] == _EXPLICIT_3]
        return CertificateInfo(
            subject=_name(der, subject),
            issuer=_name(der, issuer),
            not_after=_time(not_after),
            names=_alt_names(der, extensions[0]) if extensions else (),
            sha256=hashlib.sha256(der).hexdigest(),
        )
    except (_Malformed, IndexError, ValueError, UnicodeDecodeError):
        return None


def _one(data: bytes, offset: int, tag: int) -> tuple[int, int]:
    found, start, end = _header(data, offset)
    if found != tag:
        raise _Malformed(f"tag {found:#x} where {tag:#x} was expected")
    return start, end


def _header(data: bytes, offset: int) -> tuple[int, int, int]:
    """Return (tag, value start, value end) of the element at *offset*."""
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise _Malformed("unsupported length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    end = start + length
    if end > len(data):
        raise _Malformed("truncated")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    offset = start
    while offset < end:
        tag, value_start, value_end = _header(data, offset)
        found.append((tag, value_start, value_end))
        offset = value_end
    return found


def _name(data: bytes, name: tuple[int, int, int]) -> str:
    parts = []
    for rdn_tag, rdn_start, rdn_end in _children(data, name[1], name[2]):
        if rdn_tag != _SET:
            raise _Malformed("a name holds something else than sets")
        for _, attr_start, attr_end in _children(data, rdn_start, rdn_end):
            (oid_tag, oid_start, oid_end), (value_tag, value_start, value_end) = _children(
                data, attr_start, attr_end
            )[:2]
            label = _NAMES.get(data[oid_start:oid_end]) if oid_tag == _OID else None
            encoding = _STRINGS.get(value_tag)
            if label and encoding:
                parts.append(f"{label}={data[value_start:value_end].decode(encoding)}")
    return ", ".join(reversed(parts)) or "(empty)"


def _alt_names(data: bytes, extensions: tuple[int, int, int]) -> tuple[str, ...]:
    (_, start, end) = _children(data, extensions[1], extensions[2])[0]
    for _, ext_start, ext_end in _children(data, start, end):
        parts = _children(data, ext_start, ext_end)
        if parts[0][0] != _OID or data[parts[0][1] : parts[0][2]] != _SAN:
            continue
        tag, value_start, value_end = parts[-1]
        if tag != _OCTETS:
            raise _Malformed("subjectAltName is not an OCTET STRING")
        names = []
        (_, seq_start, seq_end) = _children(data, value_start, value_end)[0]
        for name_tag, name_start, name_end in _children(data, seq_start, seq_end):
            value = data[name_start:name_end]
            if name_tag == _DNS_NAME:
                names.append(value.decode("ascii"))
            elif name_tag == _IP_ADDRESS and len(value) in (4, 16):
                names.append(str(ipaddress.ip_address(value)))
        return tuple(names)
    return ()


def _time(text: str) -> str:
    # UTCTime YYMMDDHHMMSSZ / GeneralizedTime YYYYMMDDHHMMSSZ -> YYYY-MM-DD HH:MM:SSZ
    if len(text) == 13:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    if len(text) != 15:
        return text
    return f"{text[:4]}-{text[4:6]}-{text[6:8]} {text[8:10]}:{text[10:12]}:{text[12:14]}Z"

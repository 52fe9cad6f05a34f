"""Believe X-Forwarded-For/-Proto only from the reverse proxies the operator named.

werkzeug's ProxyFix trusts the last TRUSTED_PROXY_HOPS entries of X-Forwarded-For from whoever connects. On its
own that makes anyone who can reach gunicorn directly able to pose as any client (e.g. as loopback, which the
dashboard admits without ADMIN_TOKEN). So the headers count only when the connecting address is in
FORWARDED_ALLOW_IPS (the same setting gunicorn uses for X-Forwarded-Proto): IPs, networks, or `*`.
"""
from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


def parse_allowed(value: str) -> list | None:
    """`127.0.0.1,::1,10.0.0.0/8` -> networks; `*` -> None (every address is a trusted proxy)."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if "*" in entries:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise SystemExit(f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network") from None
    return networks


class TrustedProxyFix:
    def __init__(self, app, hops: int, allowed: str):
        self.app = app
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops)
        self.networks = parse_allowed(allowed)
        self._verdicts: dict[str, bool] = {}

    def __call__(self, environ, start_response):
        if self.trusts(environ.get("REMOTE_ADDR", "")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)

    def trusts(self, address: str) -> bool:
        if self.networks is None:
            return True
        verdict = self._verdicts.get(address)
        if verdict is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                verdict = False
            else:
                verdict = any(ip in network for network in self.networks)
            if len(self._verdicts) < 4096:  # a handful of proxies in practice; never grow without bound
                self._verdicts[address] = verdict
        return verdict

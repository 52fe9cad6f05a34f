"""One WSGI entry point, two faces: the proxy on PROXY_PORT and the dashboard on DASHBOARD_PORT.

gunicorn sets SERVER_PORT from the listening socket the request arrived on (not from the Host header), so
configuration can never be reached through the port that is exposed to clients.
"""
from __future__ import annotations

NOT_FOUND = b"404 page not found"


class PortDispatcher:
    def __init__(self, proxy_app, dashboard_app, proxy_port: int, dashboard_port: int, services=None):
        self.proxy_app = proxy_app
        self.dashboard_app = dashboard_app
        self.services = services
        self._proxy_port = str(proxy_port)
        self._dashboard_port = str(dashboard_port)

    def __call__(self, environ, start_response):
        port = environ.get("SERVER_PORT")
        if port == self._proxy_port:
            return self.proxy_app(environ, start_response)
        if port == self._dashboard_port:
            return self.dashboard_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(NOT_FOUND)))])
        return [NOT_FOUND]

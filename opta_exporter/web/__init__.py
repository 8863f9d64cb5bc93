"""HTTP: the WSGI app (/metrics, /, /healthz), the keep-alive server and the web
config (TLS, basic auth)."""

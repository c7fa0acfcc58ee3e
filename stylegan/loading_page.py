"""What the explorer's address answers while the explorer itself is being built.

Most of ``python explore.py``'s start is importing torch and Gradio and loading the generator
(about 8 s on the project's 2-core CPU). :class:`LoadingPage` binds the page's address first,
with the standard library only, so the address answers about a second after the command starts
and a taken port is refused before anything loads. The page it serves polls the same address and
reloads itself as soon as the real page answers there; :meth:`LoadingPage.close` frees the port
for Gradio. This module imports neither torch nor Gradio, on purpose.
"""

from __future__ import annotations

import http.server
import socket
import threading

# Every answer of the loading page carries this header: its script (and a test) tells the
# loading page from the real one by it.
LOADING_HEADER = "X-Explorer-Loading"
FIRST_PORT, PORT_TRIES = 7860, 100  # server.port=null: the first free port, as Gradio picks one
POLL_MS = 300
SILENT_S = 15  # no answer at all for this long: the explorer has stopped (the terminal says why)

PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>StyleGAN explorer: loading</title>
<style>body {{ font-family: sans-serif; margin: 3em; color: #333; }}</style></head>
<body><h1>StyleGAN explorer</h1>
<p id="status">Loading the generator; this page turns into the explorer in a few seconds.</p>
<script>
let lastAnswer = Date.now();
async function poll() {{
  try {{
    const answer = await fetch(location.pathname, {{cache: "no-store"}});
    lastAnswer = Date.now();
    if (answer.ok && !answer.headers.has("{LOADING_HEADER}")) {{ location.reload(); return; }}
  }} catch (error) {{
    // The port changes hands between this page and the explorer: a refused request is normal.
    if (Date.now() - lastAnswer > {SILENT_S * 1000}) {{
      document.getElementById("status").textContent =
        "The explorer stopped before its page was ready: the terminal that started it says why.";
    }}
  }}
  setTimeout(poll, {POLL_MS});
}}
setTimeout(poll, {POLL_MS});
</script></body></html>
""".encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/`` is the loading page; any other path (an API call) is 503 with ``Retry-After``."""

    def _answer(self, *, body: bool) -> None:
        found = self.path.split("?", 1)[0] in ("", "/")
        content = PAGE if found else b"the explorer is loading; retry in a second\n"
        self.send_response(200 if found else 503)
        self.send_header("Content-Type", "text/html; charset=utf-8" if found else "text/plain")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header(LOADING_HEADER, "1")
        if not found:
            self.send_header("Retry-After", "1")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the terminal shows the explorer's lines, not one per poll


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class LoadingPage:
    """The loading page served on ``host:port`` (``port=None``: the first free one from 7860)
    until :meth:`close`. Raises ``OSError`` when the port cannot be bound."""

    def __init__(self, host: str, port: int | None) -> None:
        self.host = host
        self._server = self._bind(host, port)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @staticmethod
    def _bind(host: str, port: int | None) -> _Server:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_FamilyServer", (_Server,), {"address_family": family})
        ports = [port] if port is not None else range(FIRST_PORT, FIRST_PORT + PORT_TRIES)
        error: OSError | None = None
        for candidate in ports:
            try:
                return server_class((host, candidate), _Handler)
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def close(self) -> None:
        """Stop answering and free the port (at once: the next server may bind it)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self) -> LoadingPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

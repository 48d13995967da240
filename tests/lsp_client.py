"""A minimal Language Server Protocol client over stdio, enough to ask yaml-language-server (the server behind
VS Code's YAML extension) for completions and diagnostics of one file (tests/test_schema.py)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from typing import Any

SETTINGS = {"validate": True, "completion": True, "hover": True, "schemas": {}, "schemaStore": {"enable": False}}


class Server:
    def __init__(self, command: str) -> None:
        self.proc = subprocess.Popen(
            [command, "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 1
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": None,
                "capabilities": {
                    "textDocument": {"completion": {"completionItem": {"snippetSupport": False}}},
                    "workspace": {"configuration": True},
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": {"yaml": SETTINGS}})

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return None
        length = 0
        while (line := self.proc.stdout.readline().decode()) not in ("\r\n", "\n", ""):
            if line.lower().startswith("content-length"):
                length = int(line.split(":")[1])
        return json.loads(self.proc.stdout.read(length)) if length else None

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any], timeout: float = 20) -> Any:
        ident, self.next_id = self.next_id, self.next_id + 1
        self._send({"id": ident, "method": method, "params": params})
        return self.pump(timeout, ident)

    def pump(self, timeout: float, until: int | None = None) -> Any:
        """Answer the server's own requests and collect diagnostics until reply `until` (or the time is up)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            message = self._read(max(0.05, end - time.monotonic()))
            if message is None:
                continue
            if message.get("method") == "workspace/configuration":
                self._send({"id": message["id"], "result": [SETTINGS for _ in message["params"]["items"]]})
            elif message.get("method") == "textDocument/publishDiagnostics":
                self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
            elif "method" in message and "id" in message:
                self._send({"id": message["id"], "result": None})
            elif until is not None and message.get("id") == until:
                return message.get("result")
        return None

    def open(self, uri: str, text: str) -> None:
        self.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}
        )

    def completions(self, uri: str, line: int, column: int) -> list[str]:
        result = self.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}
        )
        items = result.get("items", []) if isinstance(result, dict) else result or []
        return sorted(item["label"] for item in items)

"""The receiver code in docs/webhooks.md verifies what the server sends (issue 17, "how to
verify in Python and JavaScript"): the "without the library" snippets, taken from the doc as
written, accept a delivery signed by the server's signing code and refuse a changed body,
id, timestamp or secret, and an old timestamp. The JavaScript one runs under Node (skipped
where there is no ``node``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graphql_api.webhooks.signing import headers, new_secret

DOC = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"
BODY = '{"type":"trainingJob.COMPLETED","data":{"name":"caf\u00e9 \u2603"}}'.encode()


def snippet(language: str, marker: str) -> str:
    """The doc's code block in ``language`` that contains ``marker``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    (found,) = [b for b in blocks if marker in b]
    return str(found)


#: Each case: what is sent (secret, headers, body) given a fresh secret, and whether it verifies.
def cases() -> list[tuple[str, Callable[[], tuple[str, dict[str, str], bytes]], bool]]:
    def signed(ts_offset: int = 0) -> tuple[str, dict[str, str], bytes]:
        secret = new_secret()
        return secret, headers(secret, "msg_wh1_42", int(time.time()) + ts_offset, BODY), BODY

    def changed(what: str) -> Callable[[], tuple[str, dict[str, str], bytes]]:
        def make() -> tuple[str, dict[str, str], bytes]:
            secret, sent, body = signed()
            if what == "body":
                body = body.replace(b"COMPLETED", b"FAILED")
            elif what == "id":
                sent["webhook-id"] = "msg_wh1_43"
            elif what == "timestamp":
                sent["webhook-timestamp"] = str(int(sent["webhook-timestamp"]) + 1)
            else:
                secret = new_secret()
            return secret, sent, body

        return make

    return [
        ("signed", signed, True),
        ("old", lambda: signed(-600), False),
        *[(f"changed {w}", changed(w), False) for w in ("body", "id", "timestamp", "secret")],
    ]


CASES = cases()


@pytest.mark.parametrize(("name", "make", "valid"), CASES, ids=[c[0] for c in CASES])
def test_the_python_snippet_verifies_what_the_server_signs(
    name: str, make: Callable[[], tuple[str, dict[str, str], bytes]], valid: bool
) -> None:
    namespace: dict[str, Any] = {}
    exec(snippet("python", "def verify("), namespace)  # the doc's own code, as written
    secret, sent, body = make()
    assert namespace["verify"](secret, sent, body) is valid, name


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_javascript_snippet_verifies_what_the_server_signs(tmp_path: Path) -> None:
    made = [(name, *make(), valid) for name, make, valid in CASES]
    inputs = [
        {"name": name, "secret": secret, "headers": sent, "body": body.hex()}
        for name, secret, sent, body, _ in made
    ]
    script = tmp_path / "verify.mjs"
    script.write_text(
        snippet("js", "function verify(")
        + "\nconst cases = JSON.parse(process.argv[2]);\n"
        + "console.log(JSON.stringify(cases.map((c) =>"
        + ' verify(c.secret, c.headers, Buffer.from(c.body, "hex")))));\n'
    )
    run = subprocess.run(
        ["node", str(script), json.dumps(inputs)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [valid for *_, valid in made]

"""The GraphiQL page: Strawberry's, opening on mltrain's own example operations, loading every
script and style from this server (no CDN: it works offline), and not keeping request headers
(API keys) in the browser's localStorage.

Strawberry's page names its files on a CDN, each with a Subresource Integrity hash; here each
URL is the same file vendored in the package (graphql_api/ui/vendor.lock.json), so the browser
still checks the hash, and a Strawberry upgrade that names a file not vendored fails loudly.

GraphiQL persists the Headers editor to localStorage when ``shouldPersistHeaders`` is true,
which Strawberry's page sets: an ``Authorization: Bearer`` key typed once would stay on disk for
every later visitor of the browser profile. Here it is off: the key lives as long as the tab.
"""

from __future__ import annotations

import re
from functools import lru_cache

from strawberry.http.ides import get_graphql_ide_html

from graphql_api.ui import ASSETS_PREFIX, VENDOR

#: The operations GraphiQL opens with: the README's, runnable against `mltrain serve --demo`.
EXAMPLE_OPERATIONS = """# mltrain: a model registry and training jobs over one GraphQL endpoint.
#
# Pick an operation with the run button (or put the cursor in it and press Ctrl-Enter).
# With API keys configured, add {"Authorization": "Bearer <key>"} in the Headers tab below;
# it is kept for this tab only, never stored by the browser.

# What an inference service asks
query ProductionVersion {
  productionModelVersion(modelName: "churn-predictor") { modelId version deployedDate }
}

# The training job monitor: newest first, keyset-paginated
query RunningAndFailedJobs {
  trainingJobs(first: 20, filter: {statuses: [RUNNING, FAILED]}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { jobId status metrics startedDate modelVersion { modelName version } } }
  }
}

# Live: every change of every training job, as it happens (stop it with the run button)
subscription JobUpdates {
  trainingJobUpdates { cursor kind status job { jobId status metrics } }
}
"""

PERSIST_HEADERS = "shouldPersistHeaders: true"
EXAMPLE_START = "const EXAMPLE_QUERY = `"
CDN = "https://unpkg.com/"
#: Every URL of Strawberry's page: src="..." or href="..." (its favicon is a data: URL).
URL_ATTRIBUTE = re.compile(r'(?:src|href)="([^"]+)"')


def self_hosted(page: str) -> str:
    """``page`` with each CDN URL replaced by the vendored file's; refuses a URL it cannot
    serve, so the page never loads anything from another host."""
    for url in URL_ATTRIBUTE.findall(page):
        if url.startswith("data:"):
            continue
        if not url.startswith(CDN) or not (VENDOR / url.removeprefix(CDN)).is_file():
            raise RuntimeError(
                f"GraphiQL's page loads {url}, which is not vendored: "
                "add it to graphql_api/ui/vendor.lock.json"
            )
    return page.replace(CDN, f"{ASSETS_PREFIX}/vendor/")


@lru_cache(maxsize=1)
def graphiql_page() -> str:
    """Strawberry's GraphiQL page with mltrain's example and headers not persisted; fails
    loudly if Strawberry's page no longer has what is replaced (a test loads it)."""
    page = get_graphql_ide_html("graphiql")
    start = page.find(EXAMPLE_START)
    end = page.find("`;", start + len(EXAMPLE_START))
    if PERSIST_HEADERS not in page or start < 0 or end < 0:
        raise RuntimeError("Strawberry's GraphiQL page changed: update graphql_api/graphiql.py")
    if "`" in EXAMPLE_OPERATIONS or "${" in EXAMPLE_OPERATIONS:
        raise RuntimeError("the example goes into a JavaScript template literal: no ` or ${")
    page = page[: start + len(EXAMPLE_START)] + EXAMPLE_OPERATIONS + page[end:]
    return self_hosted(page.replace(PERSIST_HEADERS, "shouldPersistHeaders: false"))

"""Live change feed: the change log read in order, pushed to subscribers as it grows.

One ``ChangeFeed`` per server process tails the event log (``tailer``), is woken at once by
local appends (``notify``), and fans events out to subscribers with bounded buffers
(``subscriber``), each choosing its events with a ``selectors`` filter. Cursors (``cursor``) are
opaque to clients. See docs/subscriptions.md.
"""

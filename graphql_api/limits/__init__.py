"""What no request can exceed: query cost (``rules``), request body size (``body``), WebSocket
connections per key (``connections``). Every refusal names the limit it hit. See
docs/security.md.
"""

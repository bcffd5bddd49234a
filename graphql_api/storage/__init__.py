"""Persistence behind one interface (``base``); ``mongo`` alone talks to the driver."""

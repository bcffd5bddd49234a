"""Persistence behind one interface (``base``); ``mongo`` is the only module that uses the driver."""

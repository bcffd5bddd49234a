"""Webhooks (issue 17 item 2): the parts built so far, signing and target checks. Delivery,
storage and the API are not built yet (see docs/webhooks.md)."""

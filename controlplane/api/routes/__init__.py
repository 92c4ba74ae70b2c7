"""The API's routers, one module per area. Dashboard routers require a service token
(:func:`controlplane.api.auth.require_service_token`); :mod:`.health` is open."""

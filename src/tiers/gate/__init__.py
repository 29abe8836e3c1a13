"""The access gate: who may reach a protected environment, decided in one place.

Caddy moves the bytes; the gate only decides. Every request to a protected site goes
through Caddy's ``forward_auth`` to the gate's ``/verify``, which answers 200 (with a
signed identity assertion for the origin), a redirect to the login page, or a refusal.

- :mod:`tiers.gate.policy`: the one path normalisation and the one decision (bypass,
  allow, deny), shared by the gate, ``tiers access explain`` and the Cloudflare export;
- :mod:`tiers.gate.identity`: who someone is once signed in, and the ``allow`` selectors;
- :mod:`tiers.gate.explain`: ``tiers access explain URL``, the decision with its rules;
- :mod:`tiers.gate.cloudflare`: the same rules as Cloudflare Access applications, and
  an evaluator of such an export with Cloudflare's semantics (the round trip);
- the gate service itself: :mod:`~tiers.gate.app` (the ASGI app, ``make_app``) with
  :mod:`~tiers.gate.verify` (``/verify``, the per-request path) and
  :mod:`~tiers.gate.oauth` (the GitHub and OIDC routes); :mod:`~tiers.gate.core` (one
  environment's gate: rules, caches, login work); :mod:`~tiers.gate.sessions` (the
  cookie, the live-session cache, the host hop); :mod:`~tiers.gate.assertion` (the
  signed identity for the origin, its keys, JWKS and ``verify``); :mod:`~tiers.gate.otp`
  (email PINs and the local mailbox); :mod:`~tiers.gate.tokens` (service tokens);
  :mod:`~tiers.gate.store` (the ``access_*`` tables); :mod:`~tiers.gate.returns` (safe
  return URLs); :mod:`~tiers.gate.secret` (``.tiers/gate/ENV/``);
  :mod:`~tiers.gate.serve` (``tiers gate serve``); the pages in ``pages/``.
"""

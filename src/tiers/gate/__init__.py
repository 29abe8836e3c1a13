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
- the gate service itself (sessions, one-time PINs, GitHub and OIDC logins, service
  tokens, the assertion keys and their JWKS, the pages) in the modules beside these.
"""

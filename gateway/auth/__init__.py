"""Authentication: SMART Backend Services (client_credentials with a signed client assertion),
the gateway's own signed access tokens, tokens of a region's identity provider, and the
registry of clients (`gateway clients …`). Who may see what is gateway.access's."""

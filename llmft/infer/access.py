"""Who may reach a server llmft starts (task=serve, task=board)."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # only this machine can connect
TOKEN_ENV = "LLMFT_API_KEY"  # the API key / sign-in token, kept out of saved configs

"""Development kit: local OpenBao, the Slack Web API stand-in and a signed-request client for tests and the demo."""

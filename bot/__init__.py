"""jitbot Slack side: settings, wiring, the Bolt app, its listeners and the command line."""

"""The retrospective and other files the bot writes (markdown, no Slack escaping: commands/files.py)."""

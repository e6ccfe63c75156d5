"""The ephemeral replies: one file per command family, one Jinja2 macro per reply (commands/render.py `reply`)."""

"""The rules of the launch. Plain functions over (Context, parsed arguments) -> Result.

`commands.families` imports every family so it registers itself (commands/registry.py).
Nothing here imports slack_bolt or slack_sdk.
"""

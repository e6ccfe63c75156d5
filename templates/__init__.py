"""The words the bot says: one Jinja2 template per message (`files/` for the retrospective).

A package only so that a regular install (a wheel, `pip install .`) ships the `.j2` files beside the code.
"""

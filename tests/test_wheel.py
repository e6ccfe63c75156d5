"""Issue 12: a regular install (a wheel, `pip install .`) ships what the bot reads at run time.

.ci/run installs the wheel in a fresh venv and runs a command from it; this checks the whole list:
every template (the messages, `files/` for the retrospective) and the migrations, whatever their suffix.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.processes import ROOT

READ_AT_RUN_TIME = ("templates", "db/migrations")


def test_the_wheel_ships_every_template_and_migration(tmp_path: Path) -> None:
    # built from a copy: a build/ left in the work tree by an earlier build would still hold old files
    source = shutil.copytree(ROOT, tmp_path / "source", ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "*.db*"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(source)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("warroom-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {path.relative_to(ROOT).as_posix() for folder in READ_AT_RUN_TIME for path in (ROOT / folder).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts}
    assert "templates/incident.j2" in wanted and "templates/files/retro.md.j2" in wanted
    assert sorted(wanted - shipped) == []

"""The package builds a wheel (`python -m build`) that installs and imports in a clean virtual
environment, typed (`py.typed`)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_in_a_clean_environment(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(PACKAGE)],
        check=True,
        capture_output=True,
    )
    wheels = list(dist.glob("marquee_client-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "marquee_client/py.typed" in names
    assert "marquee_client/pandas.py" in names

    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheels[0]),
        ],
        check=True,
    )
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import marquee_client, httpx; "
            "c = marquee_client.Client('http://127.0.0.1:9', linger=60, exit_timeout=0); "
            "e = c.view('u', 'm'); print(e['kind'], len(e['event_id']))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["view", "36"]

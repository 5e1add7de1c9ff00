"""The source archive builds the package and carries its licence and changelog, not the tests or benchmarks."""

import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_source_archive_leaves_tests_and_benchmarks_out_and_names_its_licence(tmp_path: Path):
    uv = shutil.which("uv")
    assert uv is not None, "uv builds the archive (README, 'Two commands')"
    subprocess.run([uv, "build", "--sdist", "--out-dir", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    (archive,) = tmp_path.glob("offix_registry-*.tar.gz")
    with tarfile.open(archive) as sdist:
        top = {Path(name).parts[1] for name in sdist.getnames() if len(Path(name).parts) > 1}
        metadata = sdist.extractfile(next(n for n in sdist.getnames() if n.endswith("/PKG-INFO")))
        assert metadata is not None
        info = metadata.read().decode()
    assert not top & {"tests", "bench"}, sorted(top)
    assert {"LICENSE", "CHANGELOG.md", "README.md", "kernel", "registry", "guard", "ledger", "web", "cli"} <= top
    assert "License-File: LICENSE" in info

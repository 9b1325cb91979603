"""The package as the Docker image builds it: what the Dockerfile copies from the build
context (the tree filtered by .dockerignore) becomes a wheel, which is installed into a
fresh virtualenv and must serve. No Docker daemon is needed: the Dockerfile's COPY and
WORKDIR steps are replayed here, up to the step that builds the package.
"""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, start_command
from tests.support.signing import SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

ROOT = Path(__file__).resolve().parent.parent
# The RUN step that builds the package from a directory of the image: `pip wheel ... .`
# or `pip install ... .`.
_BUILD_STEP = re.compile(r"\bpip\s+(wheel|install)\b[^&;|]*\s\.(\s|$)")


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            steps.append((name.upper(), rest.strip()))
    return steps


def _ignore_patterns(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (is_exception, regex) in file order; the last match wins."""
    patterns = []
    path = context / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        # A pattern naming a folder leaves out everything below it.
        patterns.append((exception, re.compile(f"{regex}(/.*)?")))
    return patterns


def _context_files(context: Path) -> list[str]:
    """What `docker build` would be sent from a clone of this tree: the tracked files
    (and new ones not ignored by git, so local changes are tested too), as they are in the
    working tree, less what .dockerignore leaves out."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=context,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = _ignore_patterns(context)
    return [
        name
        for name in filter(None, listed.split("\0"))
        if not _docker_ignores(name, patterns) and (context / name).is_file()
    ]


def _docker_ignores(name: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for exception, pattern in patterns:
        if pattern.fullmatch(name):
            ignored = not exception
    return ignored


@dataclass
class _Image:
    """The build stage's filesystem, as far as the Dockerfile's COPY steps shape it."""

    root: Path
    context: Path
    files: list[str]
    workdir: str = "/"

    def path(self, where: str) -> Path:
        absolute = where if where.startswith("/") else f"{self.workdir.rstrip('/')}/{where}"
        return self.root / absolute.lstrip("/")

    def copy(self, arguments: str) -> None:
        *sources, destination = [a for a in arguments.split() if not a.startswith("--")]
        assert not any(c in "".join(sources) for c in "*?["), f"COPY glob not replayed: {arguments}"
        into_folder = destination.endswith("/") or len(sources) > 1
        target = self.path(destination)
        for source in sources:
            prefix = "" if source.strip("/") in ("", ".") else source.strip("/") + "/"
            if source.strip("/") in self.files:  # a file
                place = target / Path(source).name if into_folder else target
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.context / source, place)
                continue
            below = [f for f in self.files if f.startswith(prefix)]
            assert below, f"COPY {source}: not in the build context"
            for name in below:  # a folder: its contents go into the destination
                place = target / name.removeprefix(prefix)
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.context / name, place)


def build_directory(dockerfile: str, context: Path, root: Path) -> Path:
    """Replay the Dockerfile's COPY and WORKDIR steps; the directory its last
    package-building RUN builds (the one whose result the image keeps)."""
    files = _context_files(context)
    image = _Image(root, context, files)
    built: Path | None = None
    for number, (instruction, arguments) in enumerate(_instructions(dockerfile)):
        if instruction == "FROM":  # a new stage starts from an empty filesystem
            image = _Image(root / f"stage{number}", context, files)
        elif instruction == "WORKDIR":
            image.workdir = (
                arguments if arguments.startswith("/") else f"{image.workdir}/{arguments}"
            )
            image.path(".").mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and "--from=" not in arguments:
            image.copy(arguments)
        elif instruction == "RUN" and _BUILD_STEP.search(arguments):
            built = image.path(".")
    assert built is not None, "the Dockerfile has no `pip wheel .` or `pip install .` step"
    return built


def _fresh_venv(where: Path, wheel_names: set[str]) -> Path:
    """A new virtualenv that sees the dev environment's third-party packages (the declared
    dependencies, already installed) through a folder of links, but none of this project:
    not its editable install, not the source tree."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    dependencies = where.parent / "dependencies"
    dependencies.mkdir()
    for folder in map(Path, site.getsitepackages()):
        for entry in folder.iterdir():
            name = entry.name
            if name.endswith(".pth") or name.startswith(("__editable__", "stripe_ledger")):
                continue
            if name.split(".")[0] in {"pip", "setuptools", "pkg_resources", "_distutils_hack"}:
                continue
            assert entry.stem not in wheel_names, f"{name} would shadow the wheel's package"
            (dependencies / name).symlink_to(entry)
    [packages] = where.glob("lib/python*/site-packages")
    (packages / "dependencies.pth").write_text(f"{dependencies}\n")
    return where


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `stripe-ledger` command of the package built as the Dockerfile builds it."""
    work = tmp_path_factory.mktemp("packaging")
    source = build_directory((ROOT / "Dockerfile").read_text(), ROOT, work / "image")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(work / "wheels"), str(source)],
        check=True,
    )  # fmt: skip
    [wheel] = (work / "wheels").glob("*.whl")
    listing = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    ).stdout
    top_level = {line.split("/")[0] for line in listing.splitlines()[1:] if "/" in line}
    venv = _fresh_venv(work / "venv", top_level)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         str(wheel)],
        check=True,
    )  # fmt: skip
    return venv / "bin" / "stripe-ledger"


def test_the_docker_build_context_leaves_out_what_git_ignores() -> None:
    # Local state (.env, data/) has no place in a build, and a stale build/ or *.egg-info
    # would let setuptools put files in the wheel that the tree no longer has.
    patterns = _ignore_patterns(ROOT)
    for line in (ROOT / ".gitignore").read_text().split():
        example = line.replace("*", "x").strip("/") + ("/file" if line.endswith("/") else "")
        assert _docker_ignores(example, patterns), f".dockerignore lets {example} in"


def test_the_package_built_as_the_dockerfile_builds_it_serves_webhooks(
    installed: Path, tmp_path: Path
) -> None:
    # Outside the repository, with nothing on PYTHONPATH: only the wheel's code can load.
    env = {
        "PATH": f"{installed.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "STRIPE_WEBHOOK_SECRET": SECRET,
    }
    port = free_port()
    server = start_command(
        [str(installed), "serve", "--port", str(port)], env, tmp_path, port, log_name="serve"
    )
    try:
        body = encode(fresh_id(event_2020("invoice_paid")))
        response = httpx.post(f"{server.base}/webhooks/stripe", content=body, headers=signed(body))
        assert response.status_code == 200, response.text
        assert httpx.get(f"{server.base}/healthz").status_code == 200
    finally:
        server.stop()
    assert (tmp_path / "data" / "ledger.sqlite3").exists()

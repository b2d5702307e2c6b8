"""The release spec of the docker-in-docker image for the generated GitLab CI (images/dind).

Debian's docker.io with the containerd image store; it registers QEMU's binfmt handlers itself.
The build context is the repository root (it shares images/runner/apt-suites.py).
"""

from pipeline.spec import Image, PreflightPolicy, ScanPolicy, Spec

spec = Spec(
    name="pipeline-dind",
    url="https://example.com/acme/pipeline",
    images=(
        Image(
            name="dind",
            repository="pipeline/dind",
            context="../..",
            dockerfile="images/dind/Dockerfile",
            target="runtime",
            base_image_arg="BASE_IMAGE",
            platforms=("linux/amd64", "linux/arm64"),
            description="docker-in-docker from Debian's docker packages, containerd image store.",
            licenses="Apache-2.0",
            smoke_test=("dockerd", "--version"),
        ),
    ),
    scan=ScanPolicy(fail_on=("CRITICAL", "HIGH"), ignore_unfixed=True),
    preflight=PreflightPolicy(
        levels={
            "dockerignore": "error",
            "non_root_user": "off",  # dockerd runs as root in a privileged service container
            "healthcheck": "off",  # GitLab waits for the service's port itself
            "no_latest_base": "error",
            "base_pinned_by_digest": "warning",
            "no_secret_args": "error",
        }
    ),
)

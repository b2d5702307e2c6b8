"""The release spec of the job image that pipeline's generated CI runs in (images/runner).

Released with the project's own pipeline: built for amd64 and arm64, scanned, signed, attested.
The build context is the repository root (it needs pipeline.lock); its .dockerignore keeps the
context to that, this folder and the wheels prepare.py downloaded.
"""

from pipeline.spec import Image, PreflightPolicy, ScanPolicy, Spec

spec = Spec(
    name="pipeline-runner",
    url="https://example.com/acme/pipeline",
    images=(
        Image(
            name="runner",
            repository="pipeline/runner",
            context="../..",
            dockerfile="images/runner/Dockerfile",
            target="runtime",
            base_image_arg="BASE_IMAGE",
            platforms=("linux/amd64", "linux/arm64"),
            description="The job image of pipeline's generated CI: Python 3.11, nox and the tool "
            "from pipeline.lock, docker CLI and buildx, cosign, Trivy, QEMU, gh, glab.",
            licenses="Apache-2.0",
            smoke_test=("pipeline", "--version"),
        ),
    ),
    scan=ScanPolicy(fail_on=("CRITICAL", "HIGH"), ignore_unfixed=True),
    preflight=PreflightPolicy(
        levels={
            "dockerignore": "error",
            # CI services run job containers as root (GitHub container jobs require it).
            "non_root_user": "off",
            "healthcheck": "off",  # a job image, not a service
            "no_latest_base": "error",
            "base_pinned_by_digest": "warning",
            "no_secret_args": "error",
        }
    ),
)

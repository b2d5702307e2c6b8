"""The release spec of sample-app: the project's own working example.

`nox -s release` releases this image to the built-in loopback registry (TLS + password, started on
demand); PIPELINE_REGISTRY=host:port sends the same release to another registry.
"""

from pipeline.spec import (
    CIOptions,
    Image,
    Registry,
    ScanPolicy,
    SignPolicy,
    Spec,
    TagPolicy,
)

spec = Spec(
    name="sample-app",
    url="https://example.com/acme/sample-app",
    images=(
        Image(
            name="sample-app",
            repository="acme/sample-app",
            context=".",
            dockerfile="Dockerfile",
            target="runtime",
            test_target="test",
            base_image_arg="BASE_IMAGE",
            platforms=("linux/amd64", "linux/arm64"),
            description=(
                "A small standard-library web service used to exercise the release pipeline."
            ),
            licenses="Apache-2.0",
            smoke_test=("python3", "-c", "import platform; print(platform.machine())"),
        ),
    ),
    registry=Registry(
        host="local",
        username_env="PIPELINE_REGISTRY_USERNAME",
        password_env="PIPELINE_REGISTRY_PASSWORD",  # noqa: S106  (a variable's name, not a value)
    ),
    tags=TagPolicy(release_tag="v{{version}}"),
    scan=ScanPolicy(
        fail_on=("CRITICAL", "HIGH"),
        ignore_unfixed=True,
    ),
    sign=SignPolicy(attestations=("cyclonedx", "vuln", "provenance")),
    ci=CIOptions(default_branch="main"),
)

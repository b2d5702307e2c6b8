#!/bin/sh
# The baseline for benchmarks/release.py: the work `nox -s release` does for one image, written
# the plain way, as one sequential shell script calling the same tools on the same image and
# registry. Test stage, multi-platform build and push, a smoke run per platform, a Trivy scan per
# platform (the gate), SBOM and cosign-vuln conversions, a SLSA provenance, cosign sign (version
# and commit in the payload), the same attestations as the release (each platform's SBOM and
# scan on the index and on the platform, the provenance on the index and on each platform), then
# the same tags (version, minor, major, latest, sha), written with curl. No reuse, no
# concurrency, no verification, no reproducible timestamps.
#
# Not part of the product: it exists to be timed. Inputs come from the environment (set by
# benchmarks/release.py); secrets reach curl through a netrc file, never through argv.
set -eu

: "${REGISTRY:?}" "${REPOSITORY:?}" "${VERSION:?}" "${CONTEXT:?}" "${BASE_IMAGE:?}"
: "${DB_REPOSITORY:?}" "${WORK:?}" "${COSIGN_KEY:?}" "${NETRC:?}" "${CA_FILE:?}" "${COMMIT:?}"
: "${TRIVY_IGNOREFILE:=}"

image="$REGISTRY/$REPOSITORY"
platforms="linux/amd64 linux/arm64"
native="linux/$(uname -m | sed -e s/x86_64/amd64/ -e s/aarch64/arm64/)"
cd "$CONTEXT"

# 1. Unit tests: the Dockerfile's test stage, on the native platform.
docker buildx build --progress plain --platform "$native" --target test --output type=cacheonly \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" .

# 2. Every platform, pushed (to a candidate tag) in one build.
docker buildx build --progress plain --platform linux/amd64,linux/arm64 --target runtime \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --provenance=false \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$COMMIT" \
  --metadata-file "$WORK/build.json" --push --tag "$image:candidate" .
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' \
  "$WORK/build.json")

# The platform digests, from the index.
curl -fsS --netrc-file "$NETRC" --cacert "$CA_FILE" \
  -H "Accept: application/vnd.oci.image.index.v1+json" \
  -H "Accept: application/vnd.docker.distribution.manifest.list.v2+json" \
  -o "$WORK/index.json" "https://$REGISTRY/v2/$REPOSITORY/manifests/$digest"
platform_digest() {
  python3 - "$WORK/index.json" "$1" <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    p = m.get("platform", {})
    if f"{p.get('os')}/{p.get('architecture')}" == sys.argv[2]:
        print(m["digest"])
EOF
}

# 3. Smoke run of each platform image.
for platform in $platforms; do
  docker run --rm --pull always --platform "$platform" "$image@$digest" \
    python3 -c "import platform; print(platform.machine())"
done

# 4. The gate: Trivy on each platform image, then the SBOM and vulnerability predicates.
trivy image --quiet --cache-dir "$WORK/trivy" --download-db-only --db-repository "$DB_REPOSITORY"
for platform in $platforms; do
  name=$(echo "$platform" | tr / -)
  trivy image --quiet --cache-dir "$WORK/trivy" --scanners vuln --format json --list-all-pkgs \
    --platform "$platform" --skip-db-update --skip-java-db-update --ignorefile "$TRIVY_IGNOREFILE" \
    --ignore-unfixed --severity CRITICAL,HIGH --exit-code 1 \
    --output "$WORK/scan-$name.json" "$image@$digest"
  trivy convert --quiet --format cyclonedx --output "$WORK/sbom-$name.json" "$WORK/scan-$name.json"
  trivy convert --quiet --format cosign-vuln --output "$WORK/vuln-$name.json" \
    "$WORK/scan-$name.json"
done

# 5. A SLSA v1 provenance: source, commit, base image, the index and platform digests.
python3 - "$WORK/provenance.json" "$image" "$digest" "$COMMIT" "$BASE_IMAGE" "$WORK/index.json" <<'EOF'
import json, sys
out, image, digest, commit, base, index = sys.argv[1:]
outputs = [{"name": f"{image}@{digest}", "digest": {"sha256": digest[7:]}}]
for m in json.load(open(index))["manifests"]:
    outputs.append({"name": f"{image}@{m['digest']}", "digest": {"sha256": m["digest"][7:]}})
json.dump({
    "buildDefinition": {
        "buildType": "urn:sequential-release:v1",
        "externalParameters": {"source": {"commit": commit}, "buildArgs": {"BASE_IMAGE": base}},
        "resolvedDependencies": [{"uri": "git+local", "digest": {"gitCommit": commit}},
                                 {"uri": f"pkg:docker/{base}"}],
    },
    "runDetails": {"builder": {"id": "urn:sequential-release"}, "byproducts": outputs},
}, open(out, "w"))
EOF

# 6. Sign the index; attest on the index and on each platform image.
cosign sign --yes --tlog-upload=false --key "$COSIGN_KEY" \
  --annotations "org.opencontainers.image.version=$VERSION" \
  --annotations "org.opencontainers.image.revision=$COMMIT" "$image@$digest"
attest() {  # attest REF TYPE PREDICATE
  cosign attest --yes --tlog-upload=false --key "$COSIGN_KEY" --type "$2" --predicate "$3" "$1"
}
for platform in $platforms; do
  name=$(echo "$platform" | tr / -)
  pdigest=$(platform_digest "$platform")
  attest "$image@$digest" cyclonedx "$WORK/sbom-$name.json"
  attest "$image@$digest" vuln "$WORK/vuln-$name.json"
  attest "$image@$pdigest" cyclonedx "$WORK/sbom-$name.json"
  attest "$image@$pdigest" vuln "$WORK/vuln-$name.json"
  attest "$image@$pdigest" slsaprovenance1 "$WORK/provenance.json"
done
attest "$image@$digest" slsaprovenance1 "$WORK/provenance.json"

# 7. The tags: the index manifest's bytes PUT under each name.
media_type=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mediaType"])' \
  "$WORK/index.json")
major=${VERSION%%.*}
minor=${VERSION%.*}
short=$(echo "$COMMIT" | cut -c1-7)
for tag in "$VERSION" "$minor" "$major" latest "sha-$short"; do
  curl -fsS --netrc-file "$NETRC" --cacert "$CA_FILE" -X PUT \
    -H "Content-Type: $media_type" \
    --data-binary "@$WORK/index.json" "https://$REGISTRY/v2/$REPOSITORY/manifests/$tag"
done
echo "released $image:$VERSION ($digest)"

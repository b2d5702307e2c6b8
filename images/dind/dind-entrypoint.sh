#!/bin/sh
# Start dockerd as GitLab's docker-in-docker service expects: on tcp://0.0.0.0:2376 with TLS
# certificates made now under $DOCKER_TLS_CERTDIR (ca/, server/, client/; the job reads
# client/), or on 2375 without TLS when DOCKER_TLS_CERTDIR is empty. Registers QEMU's binfmt
# handlers first (F flag: they work in every container), which needs this privileged container:
# those named in $PIPELINE_BINFMT (default: arm64 and arm), never one already there.
set -eu

register_binfmt() {
    binfmt=/proc/sys/fs/binfmt_misc
    [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || return 0
    for name in ${PIPELINE_BINFMT:-qemu-aarch64 qemu-arm}; do
        conf=/usr/lib/binfmt.d/$name.conf
        [ -e "$binfmt/$name" ] || [ ! -f "$conf" ] && continue
        grep -v '^#' "$conf" > "$binfmt/register" 2>/dev/null || echo "binfmt: $name not registered" >&2
    done
}

make_certs() {
    dir=$1
    mkdir -p "$dir/ca" "$dir/server" "$dir/client"
    [ -s "$dir/server/cert.pem" ] && return 0
    openssl genrsa -out "$dir/ca/key.pem" 4096 2>/dev/null
    openssl req -new -x509 -days 30 -key "$dir/ca/key.pem" -subj "/CN=docker:dind CA" \
        -out "$dir/ca/cert.pem"
    san="DNS:docker,DNS:localhost,DNS:$(hostname),IP:127.0.0.1"
    for ip in $(hostname -i 2>/dev/null); do san="$san,IP:$ip"; done
    openssl genrsa -out "$dir/server/key.pem" 4096 2>/dev/null
    openssl req -new -key "$dir/server/key.pem" -subj "/CN=docker:dind server" \
        -out "$dir/server/csr.pem"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$dir/server/ext.cnf"
    openssl x509 -req -days 30 -in "$dir/server/csr.pem" -CA "$dir/ca/cert.pem" \
        -CAkey "$dir/ca/key.pem" -CAcreateserial -extfile "$dir/server/ext.cnf" \
        -out "$dir/server/cert.pem" 2>/dev/null
    openssl genrsa -out "$dir/client/key.pem" 4096 2>/dev/null
    openssl req -new -key "$dir/client/key.pem" -subj "/CN=docker:dind client" \
        -out "$dir/client/csr.pem"
    printf 'extendedKeyUsage=clientAuth\n' > "$dir/client/ext.cnf"
    openssl x509 -req -days 30 -in "$dir/client/csr.pem" -CA "$dir/ca/cert.pem" \
        -CAkey "$dir/ca/key.pem" -CAcreateserial -extfile "$dir/client/ext.cnf" \
        -out "$dir/client/cert.pem" 2>/dev/null
    cp "$dir/ca/cert.pem" "$dir/server/ca.pem"
    cp "$dir/ca/cert.pem" "$dir/client/ca.pem"
    chmod 0644 "$dir/client/key.pem"  # the job container reads it (another user may run it)
}

register_binfmt
if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
    make_certs "$DOCKER_TLS_CERTDIR"
    set -- --host=tcp://0.0.0.0:2376 --tlsverify \
        --tlscacert="$DOCKER_TLS_CERTDIR/server/ca.pem" \
        --tlscert="$DOCKER_TLS_CERTDIR/server/cert.pem" \
        --tlskey="$DOCKER_TLS_CERTDIR/server/key.pem" "$@"
else
    set -- --host=tcp://0.0.0.0:2375 "$@"
fi
exec dockerd --host=unix:///var/run/docker.sock "$@"

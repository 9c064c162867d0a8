#!/bin/sh
# A throwaway CA, a server certificate (also good as a client, as mesh
# certificates are) and a client certificate for compose.yaml. Real
# deployments take theirs from cert-manager, SPIRE or their own CA.
# Usage: deploy/make-certs.sh [DIR]   (default deploy/certs)
set -eu
dir=${1:-$(dirname "$0")/certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=socialgraph dev CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
issue() { # NAME SAN EKU
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$2" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 90 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue server "DNS:socialgraph,DNS:localhost,IP:127.0.0.1,URI:spiffe://socialgraph.local/server" serverAuth,clientAuth
issue feed "DNS:feed.internal,URI:spiffe://socialgraph.local/feed" clientAuth
chmod 644 ./*.pem
echo "certificates in $dir: ca.pem, server.pem + server-key.pem, feed.pem + feed-key.pem"

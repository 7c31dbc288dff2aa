#!/usr/bin/env bash
# Generates the interop test PKI into .interop/certs/ (openssl CLI, ECDSA P-256):
#   ca.pem / ca.key                 test CA that the client is told to trust (SMTPKIT_CA_FILE)
#   server.pem / server.key         leaf for localhost, 127.0.0.1, ::1 signed by that CA
#   untrusted-ca.pem / .key         an unrelated CA the client never trusts
#   untrusted.pem / untrusted.key   leaf with the same names, signed by the untrusted CA
# The keys are throwaway test keys made on the machine, never committed. Existing files
# are kept while they are valid for at least another day, so repeated runs are free.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/.interop/certs"
mkdir -p "$dir"
cd "$dir"

fresh() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || return 1
    done
    # -checkend: still valid in 86400 s; a stale set is regenerated as a whole.
    openssl x509 -in "${1}" -noout -checkend 86400 >/dev/null 2>&1
}

# make_ca NAME CN
make_ca() {
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.pem" -days 825 -subj "/O=smtpkit tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

# make_leaf NAME CA
make_leaf() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/O=smtpkit tests/CN=localhost" 2>/dev/null
    # webpki checks the SAN (never the CN) and wants serverAuth in the EKU.
    cat >"$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
        -days 825 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext" "$2.srl"
}

if ! fresh server.pem server.key ca.pem ca.key; then
    make_ca ca "smtpkit interop test CA"
    make_leaf server ca
fi
if ! fresh untrusted.pem untrusted.key untrusted-ca.pem untrusted-ca.key; then
    make_ca untrusted-ca "smtpkit UNTRUSTED test CA"
    make_leaf untrusted untrusted-ca
fi
# The leaf keys are read by the servers' own users (postfix drops privileges after
# reading them as root; aiosmtpd runs as the caller), so 0600 root-owned is enough.
chmod 600 ./*.key
openssl verify -CAfile ca.pem server.pem >/dev/null
openssl verify -CAfile untrusted-ca.pem untrusted.pem >/dev/null

#!/usr/bin/env bash
# Installs and checks what volley-bench's peers need (`volley-bench --peers go,python`):
#   grpc-go: Debian's golang-go (1.19), golang-google-grpc-dev (1.33.3) and
#            golang-github-golang-protobuf-1-3-dev (golang/protobuf 1.3.5, the sources of
#            golang-goprotobuf-dev without its protoc-gen-go, which depends on protobuf-compiler:
#            the project uses no protoc). Built offline in GOPATH mode against /usr/share/gocode.
#   Python:  grpcio 1.85.x from PyPI (the wheel) for the interpreter volley-bench runs
#            (`python3`, or $VOLLEY_BENCH_PYTHON); the asyncio floor needs only the interpreter.
# Prints the versions. `--check` installs nothing and fails if something is missing.
set -euo pipefail
cd "$(dirname "$0")"

check_only=false
[ "${1:-}" = "--check" ] && check_only=true
python=${VOLLEY_BENCH_PYTHON:-python3}
gopath=/usr/share/gocode
go_packages=(golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-3-dev)
grpcio_spec='grpcio>=1.85,<1.86'

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! $check_only; then
    missing=()
    for package in "${go_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if ! "$python" -c 'import grpc, sys; v = tuple(map(int, grpc.__version__.split(".")[:2])); sys.exit(v != (1, 85))' 2>/dev/null; then
        "$python" -m pip install -q --disable-pip-version-check --root-user-action=ignore "$grpcio_spec"
    fi
fi

status=0
echo "== grpc-go"
for package in "${go_packages[@]}"; do
    if version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) && [ -n "$version" ]; then
        echo "$package $version"
    else
        echo "$package: MISSING"; status=1
    fi
done
if command -v go >/dev/null && [ -d "$gopath/src/google.golang.org/grpc" ]; then
    # The same build volley-bench does: GOPATH mode, no module download.
    out=$(mktemp -d)
    if (cd go && GO111MODULE=off GOPATH=$gopath GOPROXY=off GOFLAGS= go build -o "$out/volley-peer-go" .); then
        "$out/volley-peer-go" version
    else
        echo "volley-peer-go: BUILD FAILED"; status=1
    fi
    rm -rf "$out"
else
    echo "go or $gopath/src/google.golang.org/grpc: MISSING"; status=1
fi

echo "== Python"
if "$python" python/peer.py version; then
    "$python" python/peer.py grpcio-version || { echo "grpcio: MISSING for $python"; status=1; }
else
    echo "$python: MISSING"; status=1
fi

echo "== protoc (not needed: the peers use hand-written message code)"
if command -v protoc >/dev/null; then echo "protoc present at $(command -v protoc), unused"; else echo "protoc: not installed"; fi
exit $status

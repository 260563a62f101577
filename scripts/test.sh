#!/usr/bin/env bash
# Runs every check and test of the workspace, installing first whatever the
# tests need on a fresh Debian machine. Used by CI (.ci/run) and by developers.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p rpc-core  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! need cargo; then
    echo "error: cargo is not installed; install Rust from https://rustup.rs first" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "installing the $component component"
        rustup component add "$component"
    fi
done


# The registry tests run real ZooKeeper servers: Debian's `zookeeper` package (and its Java).
if [ ! -f /usr/share/java/zookeeper.jar ] || ! need java; then
    apt_install zookeeper "the registry tests start real ZooKeeper servers"
fi
# The rpc-hessian golden-bytes tests compile and run a Java program against Caucho's
# Hessian (Debian's `libhessian-java`); the Java interop tests run real Apache Dubbo 3.3
# peers (tests/java), built with Maven into target/java-peers (dependencies cached in
# target/m2; skipped when up to date). Both need a JDK (`javac`), not only a JRE.
if ! need javac; then
    apt_install default-jdk-headless "the Java test programs are compiled with javac"
fi
if [ ! -f /usr/share/java/hessian.jar ]; then
    apt_install libhessian-java "the rpc-hessian golden-bytes tests run Caucho's Hessian"
fi
if ! need mvn; then
    apt_install maven "the Java interop peers are built with Maven"
fi
# The Curator interop tests (tests/tests/curator.rs) compile a Java peer with javac against
# Debian's Apache Curator 5.4 (libcurator-recipes-java: curator-recipes, -framework, -client).
if [ ! -f /usr/share/java/curator-recipes.jar ]; then
    apt_install libcurator-recipes-java "the Curator interop tests run Apache Curator's lock and leader latch"
fi
if [ ! -f /usr/share/java/slf4j-simple.jar ]; then
    apt_install libslf4j-java "the Curator interop peer logs to stderr with slf4j-simple"
fi
tests/java/build.sh
if ! need curl; then
    apt_install curl "the tri tests call providers with curl"
fi
# The Java interop tests run in network namespaces they create (rpc_tests::netns):
# `unshare` (util-linux) and `ip` (iproute2), as root.
if ! need unshare; then
    apt_install util-linux "the Java interop tests run in a network namespace (unshare)"
fi
if ! need ip; then
    apt_install iproute2 "the Java interop tests set up addresses in their network namespace (ip)"
fi

# The interoperability tests run real Python peers: Apache Dubbo's Python implementation
# (with kazoo, for ZooKeeper) and grpcio, pinned, in a virtualenv under target/ (git-ignored).
# A stamp file records what was installed; the venv is rebuilt when it is missing or differs.
interop_venv="$PWD/target/interop-venv"
interop_requirements=("apache-dubbo[zookeeper]==3.0.0b1" "grpcio==1.85.3")
interop_stamp="$interop_venv/rpc-interop-requirements.txt"
if [ ! -x "$interop_venv/bin/python" ] ||
    [ "$(cat "$interop_stamp" 2>/dev/null)" != "$(printf '%s\n' "${interop_requirements[@]}")" ]; then
    echo "installing the Python interop peers in target/interop-venv: ${interop_requirements[*]}"
    if ! need python3 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian ships `python3 -m venv` (and the ensurepip it needs) apart, in python3-venv.
        apt_install python3-venv "the interop tests need 'python3 -m venv'"
    fi
    rm -rf "$interop_venv"
    if ! { python3 -m venv "$interop_venv" &&
        "$interop_venv/bin/python" -m pip install -q --disable-pip-version-check "${interop_requirements[@]}"; }; then
        rm -rf "$interop_venv"
        echo "error: cannot install ${interop_requirements[*]} in target/interop-venv; the interop tests cannot run without them" >&2
        exit 1
    fi
    printf '%s\n' "${interop_requirements[@]}" >"$interop_stamp"
fi
export RPC_INTEROP_PYTHON="$interop_venv/bin/python"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
# benchmarks/ (tonic, tarpc: heavy to build) stays out of the test build; `cargo run --release -p benchmarks`.
cargo clippy --workspace --exclude benchmarks --all-targets --locked -- -D warnings
echo "== cargo test"
# --workspace also builds the example programs, which the end-to-end tests run.
cargo test --workspace --exclude benchmarks --locked "$@"

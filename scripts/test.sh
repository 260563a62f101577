#!/usr/bin/env bash
# Runs every check and test of the workspace, installing first whatever the
# tests need on a fresh Debian machine. Used by CI (.ci/run) and by developers.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p rpc-core  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

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
    echo "installing Debian's zookeeper package (the registry tests start real ZooKeeper servers)"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if need sudo; then sudo="sudo"; else
            echo "error: ZooKeeper is missing and this user cannot install packages: run 'apt-get install -y zookeeper' as root" >&2
            exit 1
        fi
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null || {
        echo "error: 'apt-get install -y zookeeper' failed; the registry tests cannot run without it" >&2
        exit 1
    }
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# --workspace also builds the example programs, which the end-to-end tests run.
cargo test --workspace --locked "$@"

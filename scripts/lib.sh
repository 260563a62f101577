# Shell helpers shared by the project's scripts (sourced, not run).

# need COMMAND: whether COMMAND is on the PATH.
need() { command -v "$1" >/dev/null 2>&1; }

# apt_install PACKAGE WHY: installs a Debian package, as root or with sudo.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if need sudo; then sudo="sudo"; else
            echo "error: $1 is missing and this user cannot install packages: run 'apt-get install -y $1' as root ($2)" >&2
            exit 1
        fi
    fi
    echo "installing Debian's $1 package ($2)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null || {
        echo "error: 'apt-get install -y $1' failed; $2" >&2
        exit 1
    }
}

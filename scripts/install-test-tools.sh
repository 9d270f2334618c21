#!/usr/bin/env bash
# The system tools the test suite runs for real: OpenSSH's sshd and client (the SSH and Vast
# backends are tested against a real sshd on 127.0.0.1), rsync (staging), bubblewrap (the
# code sandbox), and the toolchains of the sandbox's languages (node, a JDK, rustc, Go; gcc
# links Rust programs). `make test` calls this first, so a fresh machine runs every test instead of
# skipping the ones that need these tools.
set -euo pipefail

missing=()
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
{ command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd; } || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v rustc >/dev/null 2>&1 || missing+=(rustc)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v go >/dev/null 2>&1 || missing+=(golang-go)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the test suite's system tools: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    exit 0
fi

echo "the test suite needs these system packages: ${missing[*]}" >&2
echo "install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run make test again" >&2
exit 1

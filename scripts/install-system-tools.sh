#!/usr/bin/env bash
# The system tools voltx runs for real, installed with apt-get when missing (as root), or named
# for the user to install.
#   demo: bubblewrap and util-linux (setpriv, prlimit): phase 0.2 runs every problem's tests in the
#         code sandbox, which isolates programs with bubblewrap (docs/sandbox.md).
#   test: the demo's, plus OpenSSH's sshd and client (the SSH and Vast backends are tested against
#         a real sshd on 127.0.0.1), rsync (staging), and the toolchains of the sandbox's
#         languages (node, a JDK, rustc, Go; gcc links Rust programs), so a fresh machine runs
#         every test instead of skipping the ones that need these tools.
set -euo pipefail

purpose="${1:-test}"
case "$purpose" in
    demo | test) ;;
    *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
if [ "$purpose" = test ]; then
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
{ command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd; } || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v rustc >/dev/null 2>&1 || missing+=(rustc)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the system tools the $purpose needs: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    exit 0
fi

echo "the $purpose needs these system packages: ${missing[*]}" >&2
echo "install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run make $purpose again" >&2
exit 1

#!/bin/sh
# Remove from the runtime base (python:3.11-slim, official or the local
# stand-in) what a running ticklake program never uses, before the Dockerfile
# flattens it into one layer ("FROM scratch" + "COPY --from=runtime-root / /";
# deleting files in a layer on top would not make the image smaller).
#
# Runs as root in the Dockerfile's runtime-root stage, after the ticklake user
# exists. Each removal says why it is safe; the image tests
# (tests/devstack/test_images.py) start every program and import every ticklake
# module inside each image, so a removal that breaks one fails there.
set -eu

# Packages, removed with dpkg so that /var/lib/dpkg/status stays a true list
# of what the image holds (image scanners read it):
#   apt and the libraries only it uses (TLS, signatures, seccomp): a runtime
#     image installs nothing; derive from the build stages to add packages.
#   perl-base and debconf (a Perl program): used only by package maintainer
#     scripts, which never run again here.
#   bash: /bin/sh is dash; no ticklake program or chart probe runs bash.
#   Account and system administration (run before this script, never after):
#     login, passwd, adduser and PAM with its SELinux/audit libraries (the
#     ticklake user already exists; nobody logs in to a container);
#     util-linux, mount, e2fsprogs and the block-device libraries only they
#     use (disks and mounts are the kubelet's business, not the program's).
# --force-remove-essential: perl-base, bash, login and util-linux are marked
# essential for systems that keep installing packages. --force-depends:
# ca-certificates and tzdata name debconf for their install-time questions only.
# Two rounds: the account and system tools' removal scripts still need Perl
# (pam-auth-update), so they go before Perl, apt and bash.
ADMIN="adduser login passwd libpam-runtime libpam-modules libpam-modules-bin libpam0g
libsemanage2 libsemanage-common libsepol2 libaudit1 libcap-ng0
util-linux util-linux-extra mount e2fsprogs libmount1 libsmartcols1 libblkid1 libudev1"
PACKAGING="apt libapt-pkg6.0 gpgv libgnutls30 libhogweed6 libnettle8 libp11-kit0
libtasn1-6 libidn2-0 libunistring2 libseccomp2 libxxhash0 debconf perl-base bash"

purge_installed() {
    installed=""
    for package in "$@"; do
        if dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q ' installed$'; then
            installed="$installed $package"
        fi
    done
    if [ -n "$installed" ]; then
        # shellcheck disable=SC2086  # one word per package
        dpkg --purge --force-remove-essential --force-depends $installed
    fi
}
# shellcheck disable=SC2086  # one word per package
purge_installed $ADMIN
# shellcheck disable=SC2086
purge_installed $PACKAGING

# Files no program reads at run time:
#   the wheels that seed pip into new virtualenvs (ensurepip): no venv is made
#     at run time, and the images must hold no pip (asserted by their tests);
#   documentation, manual pages and info files;
#   package caches, package lists and logs of the build.
rm -rf /usr/share/python-wheels/* \
    /usr/lib/python3*/ensurepip/_bundled/*.whl \
    /usr/local/lib/python3*/ensurepip/_bundled/*.whl \
    /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
    /var/cache/* /var/lib/apt /var/log/*

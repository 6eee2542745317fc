# E2B's base sandbox contents: Python 3 with pip usable by the default user, Node.js with
# npm, git, curl, wget, the build tools and passwordless sudo for `user`, on the Debian root filesystem the repo builds
# (imported as bulkhead/debian, so FROM works on a machine that reaches no registry).
FROM bulkhead/debian

# apt's downloads are kept between builds (never in a layer); the lists go with the layer.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
    && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       git curl wget ca-certificates nodejs npm build-essential python3-dev less procps sudo \
    && rm -rf /var/lib/apt/lists/*

# Passwordless sudo for the default user, as on E2B. sudo raises a process to the sandbox's
# root and no further (an unprivileged host uid; `bulkhead serve --no-new-privs` turns
# set-uid off altogether): docs/SECURITY.md.
RUN echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/user && chmod 0440 /etc/sudoers.d/user

# pip for the default user, into ~/.local (the system Python is Debian's).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/home/user/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /home/user

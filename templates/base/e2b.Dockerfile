# E2B's base sandbox contents: Python 3 with pip usable by the default user, Node.js with
# npm, git, curl, wget and the build tools, on the Debian root filesystem the repo builds
# (imported as bulkhead/debian, so FROM works on a machine that reaches no registry).
FROM bulkhead/debian

# apt's downloads are kept between builds (never in a layer); the lists go with the layer.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
    && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       git curl wget ca-certificates nodejs npm build-essential python3-dev less procps \
    && rm -rf /var/lib/apt/lists/*

# pip for the default user, into ~/.local (the system Python is Debian's).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/home/user/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /home/user

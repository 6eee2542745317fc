# The code interpreter's kernels on top of E2B's base contents (templates/base, built first).
FROM bulkhead-template/base

# Python kernels and the data stack, system-wide so every user's kernel finds them; Deno
# (JavaScript and TypeScript, with its own Jupyter kernel) from the package index too.
# Behind a TLS-inspecting proxy, give its CA bundle as the optional secret host_ca_bundle
# (`bulkhead serve --template-secret id=host_ca_bundle,src=...`, or `template build --secret`).
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=host_ca_bundle \
    if [ -f /run/secrets/host_ca_bundle ]; then export PIP_CERT=/run/secrets/host_ca_bundle; fi \
    && python3 -m pip install --break-system-packages \
      ipykernel numpy pandas matplotlib bash_kernel e2b-charts deno \
    && deno --version
# R and its Jupyter kernel, from Debian.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends r-cran-irkernel \
    && rm -rf /var/lib/apt/lists/*
# Plain-text tracebacks and the rich formatters (DataFrames, charts) for every IPython kernel.
COPY ipython_kernel_config.py bulkhead_formatters.py /etc/ipython/

# Bulkhead starts its execution server on port 49999 in every sandbox of this template.
LABEL dev.bulkhead.code-interpreter="true"
WORKDIR /home/user

# Same install as `make venv` (requirements.txt pins, CPU torch) and cffconvert's .venv-cff, then `make test`.
# Built and run (docs/USAGE.md, "Docker", with the measured times):
#   docker build -t mtcrl-lite .
#   docker run --rm mtcrl-lite                      # make test; add -v "$PWD/data/cache:/repo/data/cache" to reuse data
# BASE: any Debian or Ubuntu image. On one without Python 3.11 (e.g. a Debian bookworm root made with debootstrap and
# `docker import`) Debian's python3 is installed, and the build stops unless it is 3.11 (bookworm's is).
# A TLS-intercepting proxy's CA bundle, if pip needs one: `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`.
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends make git ca-certificates \
    && (command -v python3.11 >/dev/null || apt-get install -y --no-install-recommends python3 python3-venv) \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), f"needs Python 3.11, {sys.version}"'
# the CPU build of torch==2.13.0 (PyPI's default wheel is the multi-GB CUDA one); PIP_FIND_LINKS: a local wheel folder
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
WORKDIR /repo
COPY Makefile requirements.txt requirements-nodeps.txt requirements-cff.txt pyproject.toml README.md ./
COPY mtcrl_lite ./mtcrl_lite
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; make venv .venv-cff/.installed
COPY . .
CMD ["make", "test"]

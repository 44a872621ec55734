# Same install as `make venv` (requirements.txt pins, CPU torch), then `make test`.
# Not built in this repository's CI: our machines have no Docker engine (see README).
FROM python:3.11-slim
# apt's package lists stay in the image: `make data` fetches Fashion-MNIST with `apt-get download`
RUN apt-get update && apt-get install -y --no-install-recommends make git npm
# the CPU build of torch==2.13.0 (PyPI's default wheel is the multi-GB CUDA one)
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /repo
COPY Makefile requirements.txt requirements-nodeps.txt pyproject.toml README.md ./
COPY mtcrl_lite ./mtcrl_lite
RUN make venv
COPY . .
CMD ["make", "test"]

# blkcmp in a container: the same install script as `make run` / `make test`.
# Block devices need a privileged container: docker run --privileged -v /dev:/dev blkcmp ...
FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make python3 python3-venv git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/blkcmp
COPY . .
RUN scripts/install.sh
ENV PATH=/opt/blkcmp/.venv/bin:$PATH
ENTRYPOINT ["blkcmp"]
CMD ["--help"]

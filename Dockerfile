# The Plumbline image: the one `plumbline` binary, which runs as the agent
# or the controller (the chart passes the subcommand).
#
#   docker build -t ghcr.io/plumbline-dev/plumbline:0.1.0 .
#
# The tag is the chart's default image (values.yaml image.repository, tag =
# Chart.yaml appVersion = the workspace version); `tools/chart.py check`
# keeps this file, the chart and Cargo.toml in step.
#
# Why glibc and distroless/cc rather than a static musl binary on scratch:
# NVML mode dlopen()s the libnvidia-ml.so.1 that the NVIDIA runtime mounts
# into the container. That library is built against glibc, and a static
# musl binary cannot dlopen at all. distroless/cc is glibc, libgcc_s, CA
# certificates and /etc/passwd with the nonroot user (65532): no shell, no
# package manager. Build and final stage are both Debian 12, so the binary
# finds the glibc it was linked against.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# .dockerignore narrows the context to what the build reads.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p plumbline \
    && install -D -m 0755 target/release/plumbline /out/plumbline

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/plumbline-dev/plumbline" \
      org.opencontainers.image.description="Plumbline: keeps every GPU node of a Kubernetes fleet true to a declared baseline" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/plumbline /usr/local/bin/plumbline
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/plumbline"]

# syntax=docker/dockerfile:1
# Security-linter exception (checkov), with its reason: no HEALTHCHECK, because the image runs on
# Kubernetes, whose readiness/liveness probes call /readyz and /healthz (a Docker HEALTHCHECK is
# ignored there), and the distroless runtime has no shell or curl to run one.
#checkov:skip=CKV_DOCKER_2:Kubernetes probes do the health checks; distroless has no shell or curl
# The taskfarm image: one static-ish Rust binary (every role: master, worker, client, controller)
# on a distroless, non-root runtime.
#
#   docker build -t taskfarm:0.1.0 .
#   kind load docker-image taskfarm:0.1.0 --name taskfarm      (or: minikube image load taskfarm:0.1.0)

FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build needs (see .dockerignore).
COPY . .
# BuildKit caches keep the crate registry and the target directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin taskfarm \
    && cp target/release/taskfarm /taskfarm

# glibc + libgcc, no shell, no package manager; user "nonroot" is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /taskfarm /taskfarm
USER 65532:65532
# Health and readiness (/healthz, /readyz) of every long-running role.
EXPOSE 8080
ENTRYPOINT ["/taskfarm"]
CMD ["--help"]

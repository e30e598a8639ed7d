# syntax=docker/dockerfile:1
# Security-linter exception (checkov), with its reason: no HEALTHCHECK, because the images run on
# Kubernetes, whose readiness/liveness probes call /readyz and /healthz (a Docker HEALTHCHECK is
# ignored there), and the distroless runtime has no shell or curl to run one.
#checkov:skip=CKV_DOCKER_2:Kubernetes probes do the health checks; distroless has no shell or curl
# Two images from one build, each on a distroless, non-root runtime:
#   taskfarm           the role binary (master, worker, client, submit, zk): what farm pods run;
#                      no Kubernetes client, no controller, no lab code in it
#   taskfarm-operator  the controller that reconciles TaskFarm resources
#
#   docker build -t taskfarm:0.1.0 .                                      (the last stage)
#   docker build --target operator -t taskfarm-operator:0.1.0 .
#   kind load docker-image taskfarm:0.1.0 taskfarm-operator:0.1.0 --name taskfarm
#   (or: minikube image load taskfarm:0.1.0; minikube image load taskfarm-operator:0.1.0)

FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build needs (see .dockerignore).
COPY . .
# BuildKit caches keep the crate registry and the target directory between builds. The release
# profile strips and uses thin LTO (Cargo.toml).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p taskfarm -p taskfarm-operator --bin taskfarm --bin taskfarm-operator \
    && cp target/release/taskfarm target/release/taskfarm-operator /

# glibc + libgcc, no shell, no package manager; user "nonroot" is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=builder /taskfarm-operator /taskfarm-operator
USER 65532:65532
# /metrics and /healthz.
EXPOSE 8080
ENTRYPOINT ["/taskfarm-operator"]

FROM gcr.io/distroless/cc-debian12:nonroot AS taskfarm
COPY --from=builder /taskfarm /taskfarm
USER 65532:65532
# Health and readiness (/healthz, /readyz) of every long-running role.
EXPOSE 8080
ENTRYPOINT ["/taskfarm"]
CMD ["--help"]

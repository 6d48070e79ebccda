# Alongside in a container: `docker build -t alongside .` then
#   docker run -d --name alongside -p 8080:8080 -v alongside-data:/data alongside
# The SQLite database lives in the /data volume; the server runs as an unprivileged user.
# Settings are ALONGSIDE_* environment variables (docs/configuration.md), e.g.
#   -e ALONGSIDE_TLS_CERT=/certs/fullchain.pem -e ALONGSIDE_TLS_KEY=/certs/privkey.pem
# with the certificate directory mounted read-only at /certs.
# Backups: docker exec alongside alongside backup /data/backup.db

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin alongside

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home alongside \
    && mkdir /data \
    && chown alongside:alongside /data
COPY --from=build /src/target/release/alongside /usr/local/bin/alongside
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV ALONGSIDE_DATABASE=sqlite:///data/alongside.db \
    ALONGSIDE_LISTEN=0.0.0.0:8080 \
    ALONGSIDE_LOG_FORMAT=json
EXPOSE 8080
# SIGTERM: sockets close with 1001 and the last writes land (10 s grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["alongside"]
CMD ["serve"]

# citebot's image: the HTTP server by default (`citebot serve`), or the Telegram bot (`telegram`). Every step is a
# script of the repository that tests/deploy/ runs (docs/deploy.md says what was run here and what was not).
#
#   docker build -t citebot .
#   docker run -p 127.0.0.1:8080:8080 -v citebot-data:/data citebot
FROM python:3.11-slim-bookworm

# PyTorch's CPU-only index: PyPI's default torch for Linux is a multi-GB CUDA build. The version is the lock's.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    XDG_CACHE_HOME=/opt/citebot/cache \
    CITEBOT_DATA_DIR=/data \
    PATH=/opt/citebot/bin:$PATH

COPY requirements.lock pyproject.toml README.md /src/
COPY scripts/image/ /src/scripts/image/
COPY index/ /src/index/
COPY bot/ /src/bot/
RUN TORCH_INDEX="$TORCH_INDEX" /src/scripts/image/install /opt/citebot
RUN /src/scripts/image/export-model /opt/citebot
RUN /src/scripts/image/add-user citebot /data

USER citebot
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/src/scripts/image/healthcheck", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["citebot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

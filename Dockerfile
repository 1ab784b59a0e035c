FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY profiles ./profiles
COPY mappings ./mappings
RUN pip install --no-cache-dir .
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 GATEWAY_AUTH=on
EXPOSE 8080
CMD ["gateway", "serve"]
